//! An in-memory sink, for tests and examples.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use futures_util::future::BoxFuture;

use super::{Appended, AuditError, AuditSink, Chain};
use crate::record::{self, Record};
use crate::{Checkpoint, CheckpointKey, Durability, Event};

/// Keeps the log's lines in memory. [`set_failing`](MemorySink::set_failing) makes every append
/// fail, to test that callers fail closed.
pub struct MemorySink {
    state: Mutex<State>,
    failing: AtomicBool,
}

struct State {
    chain: Chain,
    lines: Vec<String>,
}

impl MemorySink {
    /// Records per checkpoint, by default.
    pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

    /// An empty log for `stream`, checkpoints signed with `key`.
    pub fn new(stream: &str, key: CheckpointKey) -> Self {
        Self::with_checkpoint_every(stream, key, Self::DEFAULT_CHECKPOINT_EVERY)
    }

    /// Like [`new`](Self::new), with a checkpoint after every `records` records.
    pub fn with_checkpoint_every(stream: &str, key: CheckpointKey, records: u64) -> Self {
        Self {
            state: Mutex::new(State {
                chain: Chain::new(stream, key, records),
                lines: Vec::new(),
            }),
            failing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes appends fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The log's lines, each without its newline.
    pub fn lines(&self) -> Vec<String> {
        self.lock()
            .lines
            .iter()
            .map(|l| l.trim_end_matches('\n').to_owned())
            .collect()
    }

    /// The decoded records.
    pub fn records(&self) -> Vec<Record> {
        self.lines()
            .iter()
            .filter_map(|l| record::decode(l.as_bytes()).ok())
            .collect()
    }

    /// The events, checkpoints left out.
    pub fn events(&self) -> Vec<Event> {
        self.records()
            .into_iter()
            .map(|r| r.event)
            .filter(|e| !matches!(e, Event::Checkpoint(_)))
            .collect()
    }

    fn append_now(&self, event: &Event) -> Result<Appended, AuditError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuditError::Unavailable(
                "the memory sink is set to fail".into(),
            ));
        }
        let mut st = self.lock();
        let st = &mut *st;
        Ok(st.chain.push_with_checkpoint(event, &mut st.lines))
    }
}

impl AuditSink for MemorySink {
    fn append(
        &self,
        event: Event,
        _durability: Durability,
    ) -> BoxFuture<'_, Result<Appended, AuditError>> {
        let result = self.append_now(&event);
        Box::pin(async move { result })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, AuditError>> {
        let result = if self.failing.load(Ordering::SeqCst) {
            Err(AuditError::Unavailable(
                "the memory sink is set to fail".into(),
            ))
        } else {
            let mut st = self.lock();
            let st = &mut *st;
            Ok(st.chain.push_checkpoint(&mut st.lines).map(|(cp, _)| cp))
        };
        Box::pin(async move { result })
    }
}

impl super::Lines for Vec<String> {
    fn push_line(&mut self, _seq: u64, line: String) {
        self.push(line);
    }
}
