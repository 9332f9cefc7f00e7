//! A thread that runs work handed to it one piece at a time, in order, and says when each is done by
//! writing a byte to a socket an event loop can watch (`offload.rs` hands it the GenAI stage's work).

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// What the thread is handed.
enum Message {
    Run(Box<dyn FnOnce() + Send>),
    /// Something the thread's work allocated, to free where it was allocated.
    Free(Box<dyn Send>),
    /// The worker is closed or gone: the work handed over before is done, and what is freed later is freed
    /// where it is let go.
    Stop,
}

thread_local! {
    /// On a worker's thread, the worker's queue (see [`Home`]).
    static HOME: RefCell<Option<Sender<Message>>> = const { RefCell::new(None) };
}

/// The thread some work ran on, when it was a worker's: what the work allocated is freed there. Freeing
/// memory another thread allocated costs the allocator atomics and the other thread's caches; a request's
/// calls are thousands of small allocations, and freeing them on the event loop's thread cost more than
/// the work the worker took over.
pub struct Home(Option<Sender<Message>>);

impl Home {
    /// The current thread's: a worker's, or none (then what is freed is freed in place).
    pub fn here() -> Home {
        Home(HOME.with(|home| home.borrow().clone()))
    }

    /// Free `value` on the home thread, or here when there is none or it has stopped.
    pub fn free(&self, value: impl Send + 'static) {
        if let Some(home) = &self.0 {
            let _ = home.send(Message::Free(Box::new(value)));
        }
    }
}

/// The outcome of each ticket: what the work made, or the panic that stopped it.
type Done<T> = Arc<Mutex<Vec<(u64, thread::Result<T>)>>>;

pub struct Worker<T> {
    queue: Option<Sender<Message>>,
    done: Done<T>,
    /// The end an event loop reads: a byte per piece of work done.
    wake: UnixStream,
    next_ticket: u64,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    pub fn new(name: &str) -> io::Result<Self> {
        let (wake, mut signal) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        let (queue, queued) = channel::<Message>();
        let home = queue.clone();
        let thread = thread::Builder::new().name(name.into()).spawn(move || {
            HOME.with(|own| *own.borrow_mut() = Some(home));
            for message in queued {
                match message {
                    Message::Run(work) => {
                        work();
                        if signal.write_all(&[1]).is_err() {
                            return; // the reading end is closed: nobody waits any more
                        }
                    }
                    Message::Free(value) => drop(value),
                    Message::Stop => return,
                }
            }
        })?;
        Ok(Worker {
            queue: Some(queue),
            done: Arc::default(),
            wake,
            next_ticket: 0,
            thread: Some(thread),
        })
    }

    /// The file descriptor that becomes readable when work is done.
    pub fn fileno(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Queue `work`; returns its ticket, which [`Worker::drain`] gives with its outcome, or None when the
    /// worker is closed.
    pub fn submit(&mut self, work: impl FnOnce() -> T + Send + 'static) -> Option<u64> {
        let ticket = self.next_ticket;
        let done = self.done.clone();
        let run = move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            done.lock().expect("not poisoned").push((ticket, outcome));
        };
        self.queue.as_ref()?.send(Message::Run(Box::new(run))).ok()?;
        self.next_ticket += 1;
        Some(ticket)
    }

    /// The outcome of each piece of work done since the last drain, in the order it was handed over.
    pub fn drain(&mut self) -> io::Result<Vec<(u64, thread::Result<T>)>> {
        // the bytes first: work done after this read has a byte of its own still to come
        let mut bytes = [0u8; 256];
        loop {
            match self.wake.read(&mut bytes) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(std::mem::take(&mut *self.done.lock().expect("not poisoned")))
    }
}

impl<T> Worker<T> {
    /// Stop the thread once the work handed over is done, and wait for it.
    pub fn close(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn stop(&mut self) {
        if let Some(queue) = self.queue.take() {
            let _ = queue.send(Message::Stop);
        }
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The message a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Every outcome of `count` pieces of work, waiting for the wake-up bytes as an event loop would.
    fn outcomes<T: Send + 'static>(worker: &mut Worker<T>, count: usize) -> Vec<(u64, thread::Result<T>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        while all.len() < count {
            assert!(Instant::now() < deadline, "the worker did not finish");
            all.extend(worker.drain().unwrap());
            thread::sleep(Duration::from_millis(1));
        }
        all
    }

    #[test]
    fn work_runs_in_order_on_the_workers_thread() {
        let mut worker = Worker::new("test-worker").unwrap();
        for number in 0..100u64 {
            worker
                .submit(move || (number, thread::current().name().map(str::to_owned)))
                .unwrap();
        }
        let outcomes = outcomes(&mut worker, 100);
        for (expected, (ticket, outcome)) in outcomes.into_iter().enumerate() {
            let (number, thread) = outcome.unwrap();
            assert_eq!((ticket, number), (expected as u64, expected as u64));
            assert_eq!(thread.as_deref(), Some("test-worker"));
        }
    }

    #[test]
    fn a_panic_is_an_outcome_and_the_worker_goes_on() {
        let mut worker = Worker::new("test-worker").unwrap();
        worker.submit(|| -> u32 { panic!("bad request") }).unwrap();
        worker.submit(|| 7).unwrap();
        let mut outcomes = outcomes(&mut worker, 2).into_iter();
        let (_, panicked) = outcomes.next().unwrap();
        assert_eq!(panic_message(&*panicked.unwrap_err()), "bad request");
        assert_eq!(outcomes.next().unwrap().1.unwrap(), 7);
    }

    /// Records the thread it is dropped on.
    struct Dropped(Arc<Mutex<Option<String>>>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = thread::current().name().map(str::to_owned);
        }
    }

    #[test]
    fn what_work_made_is_freed_on_its_thread() {
        let mut worker = Worker::new("test-worker").unwrap();
        worker.submit(Home::here).unwrap();
        let home = outcomes(&mut worker, 1).pop().unwrap().1.unwrap();
        let (there, here) = (Arc::default(), Arc::default());
        home.free(Dropped(Arc::clone(&there)));
        Home::here().free(Dropped(Arc::clone(&here))); // not a worker's thread: freed in place
        worker.close();
        assert_eq!(there.lock().unwrap().as_deref(), Some("test-worker"));
        assert_eq!(*here.lock().unwrap(), thread::current().name().map(str::to_owned));
    }

    #[test]
    fn a_closed_worker_takes_no_work() {
        let mut worker = Worker::new("test-worker").unwrap();
        worker.submit(|| 1).unwrap();
        worker.close();
        assert_eq!(worker.drain().unwrap().len(), 1);
        assert!(worker.submit(|| 2).is_none());
    }
}
