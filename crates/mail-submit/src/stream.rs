//! A message cleaned and written while it arrives (smtpd's DATA), holding
//! only the header block and one write's worth of body in memory.
//!
//! [`Stream::start`] creates the queue file (`mail_queue::Spool`: tmp/
//! file, envelope first) so the queue id is known for `Received:`. The
//! content then goes through the streaming cleaner (cleanup's header
//! work, byte for byte what `mail_cleanup::cleanup` gives for the whole
//! message) and is written in pieces of [`WRITE_CHUNK`].
//! [`Stream::commit`] fsyncs the file, renames it into `incoming/` and
//! fsyncs the directory. A message that fails on the way (header too
//! large, disk full, a client gone) is dropped with its temporary file,
//! so nothing half-written stays behind. Every call that writes blocks:
//! async callers run them under `spawn_blocking`.

use std::time::{Duration, Instant};

use mail_queue::Queue;
use mail_queue::spool::Spool;
use mail_types::QueueId;

use crate::cleaner::{Cleaner, Refused};
use crate::{Error, Queued, Submission};

/// Cleaned content is written once this much is ready, so a session
/// holds at most about this much of the body.
pub const WRITE_CHUNK: usize = 64 * 1024;

/// How long a queue file may go without a write before it is touched:
/// well inside qmgr's `clean_tmp` age (600 s), which would otherwise take
/// a slow client's file for an abandoned one.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// A message being received into its queue file.
#[derive(Debug)]
pub struct Stream {
    /// `None` once the message has failed (see `failed`).
    spool: Option<Spool>,
    /// The queue id the message is cleaned for.
    queue_id: QueueId,
    /// `None` for an origin that is already clean: content passes as is.
    cleaner: Option<Cleaner>,
    /// Cleaned content not yet written.
    out: Vec<u8>,
    /// Why the message will be refused at the end; the content after the
    /// failure is taken and discarded.
    failed: Option<Error>,
    header_limit: usize,
    /// The last write to (or touch of) the queue file.
    last_write: Instant,
}

impl Stream {
    /// Creates the queue file for `sub` (blocking). A failure is kept and
    /// returned by [`Stream::commit`]: a receiver that has already said
    /// "go ahead" reads the content anyway and answers at the end.
    /// Content of an origin that is already clean
    /// ([`crate::Origin::needs_cleanup`]) is stored as it comes.
    pub fn start(queue: &Queue, sub: &Submission) -> Stream {
        let (spool, failed) = match queue.spool(&sub.envelope()) {
            Ok(spool) => (Some(spool), None),
            Err(e) => {
                tracing::warn!("queue file write error: {e}");
                (None, Some(Error::Queue(e)))
            }
        };
        // The id only matters for Received: when there is a file.
        let queue_id = spool.as_ref().map_or_else(QueueId::generate, |s| s.id().clone());
        if spool.is_some() {
            tracing::info!(
                "{queue_id}: client={}{}",
                sub.origin.client(),
                sub.origin.client_log_suffix()
            );
        }
        let cleaner = match (sub.origin.cleanup(), sub.trace(&queue_id)) {
            (Some(params), Some(trace)) => {
                Some(Cleaner::new(params.clone(), trace, sub.sender.clone()))
            }
            _ => None,
        };
        Stream {
            spool,
            queue_id,
            cleaner,
            out: Vec::new(),
            failed,
            header_limit: sub.origin.cleanup().map_or(0, |p| p.header_size_limit),
            last_write: Instant::now(),
        }
    }

    /// The queue id the message is cleaned for (and stored under, if it
    /// is stored).
    pub fn queue_id(&self) -> &QueueId {
        &self.queue_id
    }

    /// Takes message content (no I/O).
    pub fn push(&mut self, content: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        match &mut self.cleaner {
            Some(c) => {
                if let Err(why) = c.push(content, &mut self.out) {
                    self.refused(why);
                }
            }
            None => self.out.extend_from_slice(content),
        }
    }

    /// Whether enough is ready for [`Stream::write`], or the file is due
    /// for a sign of life.
    pub fn should_write(&self) -> bool {
        self.out.len() >= WRITE_CHUNK
            || (self.spool.is_some() && self.last_write.elapsed() >= KEEP_ALIVE)
    }

    fn refused(&mut self, why: Refused) {
        self.failed = Some(match why {
            Refused::HeaderTooLarge => Error::HeaderTooLarge { limit: self.header_limit },
            Refused::Lookup(why) => {
                // Postfix's cleanup: "map lookup problem -- message not
                // accepted, try again later".
                tracing::warn!("{}: {why} -- message not accepted, try again later", self.queue_id);
                Error::Cleanup(mail_cleanup::Error::Lookup(why))
            }
        });
        self.discard();
    }

    /// Drops the file and what is buffered: the message will be refused.
    fn discard(&mut self) {
        self.spool = None;
        self.out = Vec::new();
    }

    /// Writes what is ready (blocking).
    pub fn write(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            self.out.clear();
            return;
        };
        self.last_write = Instant::now();
        let written = if self.out.is_empty() { spool.touch() } else { spool.write(&self.out) };
        if let Err(e) = written {
            tracing::warn!("{}: queue file write error: {e}", spool.id());
            self.failed = Some(Error::Queue(e));
            self.discard();
        }
        self.out.clear();
    }

    /// The end of the message with the last `content` (blocking): the
    /// rest is written and the file committed. Returns once the file is
    /// on stable storage, or why the message is not queued (nothing of it
    /// is left behind).
    pub fn commit(mut self, content: &[u8]) -> Result<Queued, Error> {
        self.push(content);
        if self.failed.is_none()
            && let Some(c) = &mut self.cleaner
            && let Err(why) = c.finish(&mut self.out)
        {
            self.refused(why);
        }
        self.write();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let Some(spool) = self.spool.take() else {
            // Unreachable: a stream without its file has `failed` set.
            return Err(Error::Queue(mail_queue::Error::Encode("queue file not started".into())));
        };
        let id = spool.id().clone();
        let message_id = self.cleaner.as_ref().and_then(|c| c.message_id()).map(str::to_owned);
        if let Some(mid) = &message_id {
            tracing::info!("{id}: message-id={mid}");
        }
        match spool.commit() {
            Ok(id) => Ok(Queued { id, message_id }),
            Err(e) => {
                tracing::warn!("{id}: queue file write error: {e}");
                Err(Error::Queue(e))
            }
        }
    }
}
