//! The native core's work off the event loop's thread (`collector/offload.py` is the Python side).
//!
//! A [`Job`] is work that needs no Python (it holds the bytes it reads as `PyBackedBytes`), then a step
//! that makes its Python result with the GIL. `Job.run` does both on the calling thread, the GIL released
//! during the work. `Worker.submit` hands the work to a [`crate::worker::Worker`] thread, which never takes
//! the GIL, and `Worker.drain`, on the event loop's thread once the worker's socket is readable, makes the
//! Python results.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;

use crate::worker::{self, panic_message};

/// The step of a job that makes its Python result, on the thread that holds the GIL.
pub type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;
type Work = Box<dyn FnOnce() -> Finish + Send>;

#[pyclass(name = "Job", module = "collector._native")]
pub struct Job {
    work: Mutex<Option<Work>>,
}

impl Job {
    pub fn new(work: impl FnOnce() -> Finish + Send + 'static) -> Job {
        Job {
            work: Mutex::new(Some(Box::new(work))),
        }
    }

    fn take(&self) -> PyResult<Work> {
        self.work
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| PyValueError::new_err("this native job has already run"))
    }
}

#[pymethods]
impl Job {
    /// The job's result, its work done on this thread with the GIL released.
    fn run(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let work = self.take()?;
        let finish = py.detach(work);
        finish(py)
    }
}

#[pyclass(name = "Worker", module = "collector._native")]
pub struct PyWorker {
    worker: worker::Worker<Finish>,
}

#[pymethods]
impl PyWorker {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(PyWorker {
            worker: worker::Worker::new("genai-native")?,
        })
    }

    /// The file descriptor that becomes readable when a job is done.
    fn fileno(&self) -> i32 {
        self.worker.fileno()
    }

    /// Hand a job's work to the worker's thread; returns its ticket, which `drain` gives with its result.
    fn submit(&mut self, job: &Job) -> PyResult<u64> {
        self.worker
            .submit(job.take()?)
            .ok_or_else(|| PyRuntimeError::new_err("the native worker is closed"))
    }

    /// `(ticket, succeeded, result or exception)` of each job done since the last drain, in order.
    fn drain(&mut self, py: Python<'_>) -> PyResult<Vec<(u64, bool, Py<PyAny>)>> {
        let mut results = Vec::new();
        for (ticket, outcome) in self.worker.drain()? {
            let result = match outcome {
                Ok(finish) => finish(py),
                Err(panic) => Err(PyRuntimeError::new_err(format!(
                    "the native core failed on a request: {}",
                    panic_message(&*panic)
                ))),
            };
            results.push(match result {
                Ok(value) => (ticket, true, value),
                Err(error) => (ticket, false, error.into_value(py).into_any()),
            });
        }
        Ok(results)
    }

    /// Stop the worker's thread once the jobs handed over are done.
    fn close(&mut self, py: Python<'_>) {
        let worker = &mut self.worker;
        py.detach(|| worker.close());
    }
}
