//! The SQLite store's own thread. Its one connection runs one call at a time whatever thread
//! makes it, so the calls queue for one thread instead of each taking a thread of tokio's
//! blocking pool and waiting there for the connection: under load the thread takes call after
//! call without sleeping, where the pool woke a thread per call and put the others back to
//! sleep on the connection's lock (a context switch or two per call, the router's largest cost
//! after SQLite itself on a two-core machine).

use std::{panic::AssertUnwindSafe, sync::mpsc};

use tokio::sync::oneshot;

use crate::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// A thread running the calls sent to it in order, until every sender is gone.
#[derive(Debug)]
pub(crate) struct StoreThread {
    jobs: mpsc::Sender<Job>,
}

impl StoreThread {
    /// Starts the thread.
    pub(crate) fn start() -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("router-store".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panicking call loses its own answer (its caller sees the error), not
                    // the thread: the calls after it still run.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the thread after the calls sent before it. `f` runs to its end even when the
    /// returned future is dropped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(f());
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::DatabaseCall("the store's thread has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::DatabaseCall("the database call panicked".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_in_order_and_a_panic_loses_only_its_own_answer() {
        let thread = StoreThread::start().expect("start");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let seen = std::sync::Arc::clone(&seen);
                thread.run(move || {
                    seen.lock().expect("lock").push(i);
                    Ok(i * 2)
                })
            })
            .collect();
        let answers = futures::future::try_join_all(calls).await.expect("answers");
        assert_eq!(answers, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(*seen.lock().expect("lock"), (0..50).collect::<Vec<_>>());

        let lost = thread
            .run(|| -> Result<()> { panic!("a bug in a call") })
            .await;
        assert!(
            matches!(&lost, Err(Error::DatabaseCall(why)) if why.contains("panicked")),
            "{lost:?}"
        );
        assert_eq!(thread.run(|| Ok(7)).await.expect("the next call"), 7);
    }
}
