//! A lock shared by every process that runs tests (`cargo test` runs test binaries one after the
//! other, nextest runs them at once): a file under the kit's cache, locked with the OS's
//! advisory lock, released when the guard drops or the process dies.

use std::{fs::File, path::Path};

use crate::{Error, Result};

/// Holds the lock on one file until dropped.
#[derive(Debug)]
pub(crate) struct FileLock(File);

impl FileLock {
    /// Blocks until this process holds the lock named `name` in `dir`.
    pub(crate) fn acquire(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(Self(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Barrier},
        time::{Duration, Instant},
    };

    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = FileLock::acquire(dir.path(), "model").expect("first");
        let (path, barrier) = (dir.path().to_path_buf(), Arc::new(Barrier::new(2)));
        let b = barrier.clone();
        let waiter = std::thread::spawn(move || {
            b.wait();
            let started = Instant::now();
            let _second = FileLock::acquire(&path, "model").expect("second");
            started.elapsed()
        });
        barrier.wait();
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        let waited = waiter.join().expect("waiter");
        assert!(
            waited >= Duration::from_millis(250),
            "waited only {waited:?}"
        );
    }
}
