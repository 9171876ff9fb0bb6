//! The connections and where their statements run.
//!
//! One writer connection (SQLite admits one writer at a time; every
//! read-modify-write transaction runs on it, `BEGIN IMMEDIATE`) and a few
//! read-only connections (WAL: readers never wait for the writer and see
//! every committed write). A statement never runs on the thread that
//! awaits it unless the store was opened with [`Dispatch::Inline`]: with
//! [`Dispatch::Threads`] the store's own threads run it, with
//! [`Dispatch::Spawn`] the caller's blocking pool does (for tokio,
//! `tokio::task::spawn_blocking`). The awaiting task gets the answer
//! through a oneshot channel.
//!
//! A job that has started runs to the end even when its future is dropped
//! (a client gone away never leaves half a transaction; an unfinished
//! transaction is rolled back when its `Transaction` drops, also on a
//! panic, so a lock poisoned by a panicking job is taken over safely).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fapi_core::store::{BoxFuture, StoreError};
use rusqlite::{Connection, OpenFlags};

/// A statement's work, as handed to a blocking pool.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs a [`Job`] on a thread that may block (a runtime's blocking pool).
pub type Spawner = Arc<dyn Fn(Job) + Send + Sync>;

/// Where the store's statements run.
#[derive(Clone)]
#[non_exhaustive]
pub enum Dispatch {
    /// On threads the store owns (this many; at least one). The default:
    /// needs no runtime, and an async worker never waits on SQLite.
    Threads(usize),
    /// On the caller's blocking pool, e.g.
    /// `Arc::new(|job| drop(tokio::task::spawn_blocking(job)))`.
    Spawn(Spawner),
    /// On the thread that polls the future (it blocks for the statement):
    /// for command-line tools and synchronous tests, never on an async
    /// runtime's workers.
    Inline,
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Threads(n) => f.debug_tuple("Threads").field(n).finish(),
            Self::Spawn(_) => f.write_str("Spawn(..)"),
            Self::Inline => f.write_str("Inline"),
        }
    }
}

/// How a store is opened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Read-only connections beside the writer (0: reads use the writer).
    pub readers: usize,
    /// Where statements run.
    pub dispatch: Dispatch,
    /// How long a connection waits for another process's write lock
    /// before the statement fails (`busy_timeout`).
    pub busy_timeout: std::time::Duration,
}

impl Default for Options {
    /// Two readers, the writer and the readers each with a store thread
    /// (three threads), a five-second busy timeout.
    fn default() -> Self {
        Self {
            readers: 2,
            dispatch: Dispatch::Threads(3),
            busy_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl Options {
    /// These options with `dispatch`.
    #[must_use]
    pub fn with_dispatch(mut self, dispatch: Dispatch) -> Self {
        self.dispatch = dispatch;
        self
    }

    /// These options with `readers` read-only connections.
    #[must_use]
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }
}

/// Which connection a job needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The writer: any statement, and every transaction that writes.
    Write,
    /// A reader: `SELECT`s only (falls back to the writer without readers).
    Read,
}

/// The store's threads: jobs from one queue.
struct Threads {
    queue: Mutex<mpsc::Sender<Job>>,
}

impl Threads {
    fn start(n: usize) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("fapi-sqlite-{i}"))
                .spawn(move || loop {
                    // the lock is held only while waiting for the next job
                    let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                        Ok(job) => job,
                        Err(_) => return, // the store is gone
                    };
                    // a panicking job loses its answer (the awaiting
                    // future reports the store unavailable), not the thread
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                })
                .map_err(StoreError::unavailable)?;
        }
        Ok(Self {
            queue: Mutex::new(tx),
        })
    }

    fn run(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| StoreError::unavailable("the sqlite store threads have stopped"))
    }
}

enum Runner {
    Threads(Threads),
    Spawn(Spawner),
    Inline,
}

/// The connections of one database file.
pub(crate) struct Pool {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    /// Where the next reader search starts (spreads waiting readers).
    next_reader: AtomicUsize,
    runner: Runner,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// A SQLite failure as the stores report it (fail closed): the error
/// itself is the cause, for the log; the text outside is fixed.
pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::unavailable(e)
}

fn configure(conn: &Connection, busy: std::time::Duration) -> Result<(), StoreError> {
    conn.busy_timeout(busy).map_err(unavailable)
}

impl Pool {
    /// Opens the writer (running `init` on it: schema and migrations),
    /// then the readers.
    pub(crate) fn open(
        path: &Path,
        options: &Options,
        init: impl FnOnce(&Connection) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let writer = Connection::open(path).map_err(unavailable)?;
        configure(&writer, options.busy_timeout)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        init(&writer)?;
        let mut readers = Vec::with_capacity(options.readers);
        for _ in 0..options.readers {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(unavailable)?;
            configure(&reader, options.busy_timeout)?;
            readers.push(Mutex::new(reader));
        }
        let runner = match &options.dispatch {
            Dispatch::Threads(n) => Runner::Threads(Threads::start(*n)?),
            Dispatch::Spawn(s) => Runner::Spawn(s.clone()),
            Dispatch::Inline => Runner::Inline,
        };
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            runner,
        })
    }

    /// The writer, on the calling thread (blocks while another job holds
    /// it). A lock poisoned by a panicking job is taken over: its
    /// transaction was rolled back when it unwound.
    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with a connection for `role`, on the calling thread: a
    /// reader that is free, else (all busy) the next one in turn.
    pub(crate) fn with<T>(&self, role: Role, f: impl FnOnce(&mut Connection) -> T) -> T {
        let n = self.readers.len();
        if role == Role::Write || n == 0 {
            return f(&mut self.writer());
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let free = (0..n).find_map(|i| self.readers.get((start + i) % n)?.try_lock().ok());
        let mut conn = match free {
            Some(conn) => conn,
            None => match self.readers.get(start % n) {
                Some(reader) => reader.lock().unwrap_or_else(PoisonError::into_inner),
                None => return f(&mut self.writer()),
            },
        };
        f(&mut conn)
    }

    /// Every connection in turn (the writer first), on the calling thread.
    pub(crate) fn each(&self, mut f: impl FnMut(&Connection)) {
        f(&self.writer());
        for reader in &self.readers {
            f(&reader.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

impl Drop for Pool {
    /// The readers close first: the last connection to close is the
    /// writer, which checkpoints the WAL and removes it and the shared
    /// memory file (a read-only connection cannot), so a closed database
    /// is one file again.
    fn drop(&mut self) {
        self.readers.clear();
    }
}

/// Runs `f` with a `role` connection of `pool` where the store's dispatch
/// says, and answers through the returned future (which owns everything:
/// `f` takes its inputs by value).
pub(crate) fn run<T, E>(
    pool: &Arc<Pool>,
    role: Role,
    f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
) -> BoxFuture<'static, Result<T, E>>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let job_pool = pool.clone();
    let (tx, rx) = futures_channel::oneshot::channel();
    let job: Job = Box::new(move || {
        let answer = job_pool.with(role, f);
        // released before the answer: whoever awaits it may be dropping
        // the last handle, and the connections must close with it
        drop(job_pool);
        let _ = tx.send(answer);
    });
    let started = match &pool.runner {
        Runner::Inline => {
            job();
            Ok(())
        }
        Runner::Threads(threads) => threads.run(job),
        Runner::Spawn(spawn) => {
            spawn(job);
            Ok(())
        }
    };
    Box::pin(async move {
        started?;
        match rx.await {
            Ok(answer) => answer,
            Err(_) => Err(E::from(unavailable(
                "a sqlite statement ended without an answer (its job panicked or was dropped)",
            ))),
        }
    })
}
