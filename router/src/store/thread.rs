//! The SQLite store's own thread. Its one connection runs one call at a time whatever thread
//! makes it, so the calls queue for one thread instead of each taking a thread of tokio's
//! blocking pool and waiting there for the connection: under load the thread takes call after
//! call without sleeping, where the pool woke a thread per call and put the others back to
//! sleep on the connection's lock (a context switch or two per call, the router's largest cost
//! after SQLite itself on a two-core machine).
//!
//! Calls that queued while the thread was busy run together in one transaction (each call's
//! writes a savepoint of it, undone alone when the call fails), committed once, and only then
//! answered: a page several of them change (a running total, a provider's credits, the end of
//! an index) is written to the WAL once per group, not once per call, and nothing is answered
//! before it is committed. Nothing waits for a group to fill: a call that finds the thread idle
//! runs at once, alone.

use std::{panic::AssertUnwindSafe, sync::Arc, sync::mpsc};

use tokio::sync::oneshot;

use crate::{Error, Result};

/// The most calls committed together.
const MAX_GROUP: usize = 64;

/// What the thread runs calls in: a transaction several calls share.
pub(crate) trait Group: Send + Sync {
    /// Opens the shared transaction.
    fn begin(&self) -> Result<()>;
    /// Commits it (rolled back when the commit fails).
    fn commit(&self) -> Result<()>;
}

/// A call sent to the thread, with where its answer goes.
trait Call: Send {
    /// Runs the call; returns its answer, to be sent once it is committed.
    fn run(self: Box<Self>) -> Box<dyn Answer>;
    /// Answers the call with `why`, without running it.
    fn refuse(self: Box<Self>, why: String);
}

/// A call's result, waiting for its group's commit.
trait Answer: Send {
    /// Sends the result, or `why` the commit failed instead.
    fn send(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct CallOf<T, F> {
    f: F,
    answer: oneshot::Sender<Result<T>>,
}

struct AnswerOf<T> {
    result: Result<T>,
    answer: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static, F: FnOnce() -> Result<T> + Send + 'static> Call for CallOf<T, F> {
    fn run(self: Box<Self>) -> Box<dyn Answer> {
        let this = *self;
        Box::new(AnswerOf {
            result: (this.f)(),
            answer: this.answer,
        })
    }

    fn refuse(self: Box<Self>, why: String) {
        let _ = self.answer.send(Err(Error::DatabaseCall(why)));
    }
}

impl<T: Send + 'static> Answer for AnswerOf<T> {
    fn send(self: Box<Self>, committed: std::result::Result<(), String>) {
        let result = match committed {
            Ok(()) => self.result,
            Err(why) => Err(Error::DatabaseCall(why)),
        };
        let _ = self.answer.send(result);
    }
}

/// A thread running the calls sent to it in order, until every sender is gone.
#[derive(Debug)]
pub(crate) struct StoreThread {
    calls: mpsc::Sender<Box<dyn Call>>,
}

impl StoreThread {
    /// Starts the thread; calls that queue together share a transaction of `group`.
    pub(crate) fn start(group: Arc<dyn Group>) -> Result<Self> {
        let (calls, queue) = mpsc::channel::<Box<dyn Call>>();
        std::thread::Builder::new()
            .name("router-store".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut calls = vec![first];
                    while calls.len() < MAX_GROUP
                        && let Ok(next) = queue.try_recv()
                    {
                        calls.push(next);
                    }
                    run_group(group.as_ref(), calls);
                }
            })?;
        Ok(Self { calls })
    }

    /// Runs `f` on the thread after the calls sent before it, and answers once its writes are
    /// committed. `f` runs to its end even when the returned future is dropped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        self.calls
            .send(Box::new(CallOf { f, answer }))
            .map_err(|_| Error::DatabaseCall("the store's thread has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::DatabaseCall("the database call panicked".into()))?
    }
}

/// Runs `calls`: one alone in its own transactions, several in one shared transaction.
fn run_group(group: &dyn Group, calls: Vec<Box<dyn Call>>) {
    // A panicking call loses its own answer (its caller sees the error), not the thread or
    // the group: its savepoint is undone as the panic unwinds.
    let run = |call: Box<dyn Call>| std::panic::catch_unwind(AssertUnwindSafe(|| call.run())).ok();
    if calls.len() == 1 {
        for call in calls {
            if let Some(answer) = run(call) {
                answer.send(Ok(()));
            }
        }
        return;
    }
    if let Err(e) = group.begin() {
        let why = format!("the database could not begin a transaction: {e}");
        for call in calls {
            call.refuse(why.clone());
        }
        return;
    }
    let answers: Vec<Box<dyn Answer>> = calls.into_iter().filter_map(run).collect();
    let committed = group
        .commit()
        .map_err(|e| format!("the database could not commit: {e}"));
    for answer in answers {
        answer.send(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A group that records what the thread did.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Group for Log {
        fn begin(&self) -> Result<()> {
            self.0.lock().expect("lock").push("begin".into());
            Ok(())
        }
        fn commit(&self) -> Result<()> {
            self.0.lock().expect("lock").push("commit".into());
            Ok(())
        }
    }

    #[tokio::test]
    async fn calls_run_in_order_and_a_panic_loses_only_its_own_answer() {
        let log = Arc::new(Log::default());
        let thread = StoreThread::start(log.clone()).expect("start");
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let log = Arc::clone(&log);
                thread.run(move || {
                    log.0.lock().expect("lock").push(i.to_string());
                    Ok(i * 2)
                })
            })
            .collect();
        let answers = futures::future::try_join_all(calls).await.expect("answers");
        assert_eq!(answers, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        let ran: Vec<String> = log
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.parse::<u32>().is_ok())
            .cloned()
            .collect();
        assert_eq!(ran, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());

        let lost = thread
            .run(|| -> Result<()> { panic!("a bug in a call") })
            .await;
        assert!(
            matches!(&lost, Err(Error::DatabaseCall(why)) if why.contains("panicked")),
            "{lost:?}"
        );
        assert_eq!(thread.run(|| Ok(7)).await.expect("the next call"), 7);
    }

    #[test]
    fn queued_calls_share_one_transaction_and_are_answered_after_its_commit() {
        let log = Arc::new(Log::default());
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let calls: Vec<Box<dyn Call>> = (0..3u32)
            .map(|i| {
                let (answer, answered) = oneshot::channel();
                let (log, tx) = (Arc::clone(&log), tx.clone());
                std::thread::spawn(move || {
                    let got: Result<u32> = answered.blocking_recv().expect("answered");
                    tx.send(got.expect("ok")).expect("send");
                });
                Box::new(CallOf {
                    f: move || {
                        log.0.lock().expect("lock").push(format!("call {i}"));
                        Ok(i)
                    },
                    answer,
                }) as Box<dyn Call>
            })
            .collect();
        run_group(log.as_ref(), calls);
        let mut got: Vec<u32> = (0..3).map(|_| rx.recv().expect("answer")).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(
            *log.0.lock().expect("lock"),
            vec!["begin", "call 0", "call 1", "call 2", "commit"]
        );
    }
}
