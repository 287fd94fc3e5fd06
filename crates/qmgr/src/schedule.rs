//! The scheduling loop: activate, dispatch to agents, record, finish.
//!
//! Severities: fatal only at start-up (no listener, queue unreadable);
//! after that every problem with one message is a warning about that
//! message, and the loop goes on.

use crate::bounce;
use crate::ledger;
use crate::policy::{self, Transport};
use mail_daemon::{Daemon, Listener, Stop};
use mail_ipc::delivery::{DeliveryRecipient, DeliveryReply, DeliveryRequest};
use mail_ipc::trigger::Trigger;
use mail_queue::{Envelope, Error as QueueError, Queue, State, StatusRecord};
use mail_types::logline::DeliveryLine;
use mail_types::{DeliveryStatus, EnhancedStatus, QueueId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Semaphore, mpsc};

/// How often incoming/ is looked at even without a trigger (the safety
/// net for a lost one; see [`Qmgr::incoming_tick`] for what it costs).
const INCOMING_POLL: Duration = Duration::from_secs(1);
/// The tick reads incoming/ at least this often, whatever its mtime says.
const INCOMING_FULL_SCAN: Duration = Duration::from_secs(10);
/// How many announced ids wait for room in active/, per message
/// `qmgr_message_active_limit` allows.
const WAITING_PER_ACTIVE: usize = 4;
/// A file in tmp/ untouched this long was abandoned by its writer.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);
/// Longest a delivery agent may take for one request.
const AGENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The settings qmgr reads, converted once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) queue_run_delay: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) bounce_lifetime: Duration,
    pub(crate) active_limit: usize,
    pub(crate) concurrency: usize,
    /// Most recipients per request to local delivery.
    pub(crate) local_recipient_limit: usize,
    /// Most recipients per request to any other agent.
    pub(crate) default_recipient_limit: usize,
    pub(crate) local_domains: mail_config::LocalDomains,
    pub(crate) myhostname: String,
    pub(crate) mail_name: String,
}

impl Settings {
    fn from_config(c: &mail_config::Main) -> Settings {
        let common = mail_config::settings::Common::new(c);
        let q = mail_config::settings::Qmgr::new(c);
        Settings {
            queue_run_delay: q.queue_run_delay,
            min_backoff: q.minimal_backoff_time,
            max_backoff: q.maximal_backoff_time,
            max_lifetime: q.maximal_queue_lifetime,
            bounce_lifetime: q.bounce_queue_lifetime,
            active_limit: q.qmgr_message_active_limit,
            concurrency: q.default_destination_concurrency_limit,
            local_recipient_limit: q.local_destination_recipient_limit,
            default_recipient_limit: q.default_destination_recipient_limit,
            // Normalised by mail_config::LocalDomains (lower case, no
            // trailing dot), the test smtpd and local delivery use too.
            local_domains: common.mydestination,
            myhostname: common.myhostname,
            mail_name: common.mail_name,
        }
    }
}

enum Ev {
    Trigger(Trigger),
    Done { id: QueueId, asked: Vec<u32>, reply: Result<DeliveryReply, String> },
    Stop(Stop),
}

/// A message in `active/`.
struct Active {
    envelope: Envelope,
    /// Recipients whose final outcome is already in the status log.
    done_before: HashSet<u32>,
    /// Outcomes of this round not yet in the status log.
    round: Vec<StatusRecord>,
    /// Delivery requests still out.
    outstanding: usize,
    /// Whether the status log was written during this round.
    recorded: bool,
}

struct Qmgr {
    queue: Queue,
    s: Settings,
    active: HashMap<QueueId, Active>,
    agents: HashMap<Transport, Arc<Semaphore>>,
    /// Each agent's socket, from master.toml.
    sockets: HashMap<Transport, std::path::PathBuf>,
    events: mpsc::UnboundedSender<Ev>,
    draining: bool,
    /// Ids announced by `Queued` (or found by a scan) while active/ was
    /// full, oldest first; taken as room frees up. At most
    /// `WAITING_PER_ACTIVE` × the active limit: past that, `scan_needed`.
    waiting: VecDeque<QueueId>,
    /// incoming/ may hold files qmgr has not taken and does not know of:
    /// a scan was skipped for want of room or failed, or `waiting`
    /// overflowed. The next tick scans.
    scan_needed: bool,
    /// The last scan found incoming/ empty: the directory's mtime just
    /// before it read the directory, and when.
    incoming_empty: Option<(SystemTime, Instant)>,
    /// Messages whose results are recorded in new status logs whose
    /// directory entries are not yet durable, and what to do with each
    /// once they are ([`Qmgr::sync_status`]: one fsync of status/ for
    /// every message finished in the same turn of the loop).
    after_sync: Vec<(QueueId, AfterRecord)>,
}

/// What [`Qmgr::finish`] does with a message once its results are
/// durable.
#[derive(Debug, Clone, Copy)]
enum AfterRecord {
    Remove,
    Defer(Duration),
}

/// Most delivery results taken from the channel in one turn of the loop,
/// sharing one fsync of status/.
const RESULTS_PER_TURN: usize = 256;

fn now() -> u64 {
    policy::now_secs(SystemTime::now())
}

pub(crate) async fn run(daemon: Daemon) -> anyhow::Result<()> {
    let queue = Queue::new(daemon.queue());
    let Some(Listener::Unix(listener)) = daemon.listeners.first() else {
        anyhow::bail!("qmgr needs one unix listener (type = \"unix\" in master.toml)");
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener.try_clone()?)?;
    queue.create_layout()?;
    clean_tmp(&queue);
    queue.remove_orphan_status()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let s = Settings::from_config(&daemon.config);
    let agents = [Transport::Local, Transport::Smtp]
        .into_iter()
        .map(|t| (t, Arc::new(Semaphore::new(s.concurrency))))
        .collect();
    // Agents are reached at the paths master.toml gives their services.
    // There is no smtp service until the SMTP client exists: its default
    // path then fails like an agent that is down, and remote mail waits.
    let sockets = [Transport::Local, Transport::Smtp]
        .into_iter()
        .map(|t| (t, daemon.socket_path_or(t.service(), t.default_socket())))
        .collect();
    let mut q = Qmgr {
        queue,
        s,
        active: HashMap::new(),
        agents,
        sockets,
        events: tx.clone(),
        draining: false,
        waiting: VecDeque::new(),
        scan_needed: false,
        incoming_empty: None,
        after_sync: Vec::new(),
    };
    tokio::spawn(accept_triggers(listener, tx.clone()));
    let stop_tx = tx.clone();
    tokio::spawn(async move {
        loop {
            let how = mail_daemon::stop_signal().await;
            if stop_tx.send(Ev::Stop(how)).is_err() {
                return;
            }
        }
    });
    // Recovery: whatever was active when the last qmgr stopped. Ready is
    // reported after it, so a qmgr that cannot read its queue fails before
    // master counts it as healthy.
    q.rescan_active()?;
    q.scan_incoming();
    q.scan_deferred(false);
    daemon.ready();

    let mut incoming_tick = tokio::time::interval(INCOMING_POLL);
    let mut deferred_tick = tokio::time::interval(q.s.queue_run_delay.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Ev::Trigger(Trigger::Wakeup)) => q.scan_incoming(),
                Some(Ev::Trigger(Trigger::Queued(ids))) => q.take_queued(ids),
                // A flush of one site or one message retries everything for
                // now: cheap, and never less than was asked.
                Some(Ev::Trigger(Trigger::Flush | Trigger::FlushSite(_) | Trigger::FlushId(_))) => {
                    q.scan_incoming();
                    q.scan_deferred(true);
                }
                Some(Ev::Done { id, asked, reply }) => {
                    q.on_done(id, asked, reply);
                    // Results that came in meanwhile (while the last
                    // fsync ran) are recorded in this turn too and share
                    // its status/ fsync (group commit).
                    for _ in 1..RESULTS_PER_TURN {
                        match rx.try_recv() {
                            Ok(Ev::Done { id, asked, reply }) => q.on_done(id, asked, reply),
                            Ok(other) => {
                                // Not a result: back to the end of the
                                // queue (the loop's own sender cannot
                                // fail while the loop runs).
                                let _ = q.events.send(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    q.sync_status();
                    q.take_waiting();
                }
                Some(Ev::Stop(Stop::Now)) | None => {
                    q.sync_status();
                    return Ok(());
                }
                Some(Ev::Stop(Stop::Drain)) => {
                    daemon.draining();
                    q.draining = true;
                }
            },
            _ = incoming_tick.tick() => q.incoming_tick(),
            _ = deferred_tick.tick() => {
                if let Err(e) = q.rescan_active() {
                    tracing::warn!("scan active: {e}");
                }
                q.scan_deferred(false);
                clean_tmp(&q.queue);
            }
        }
        // Whatever finished outside a batch of results (activate finds
        // every recipient final already) is made durable here.
        q.sync_status();
        if q.draining && q.active.is_empty() {
            return Ok(());
        }
    }
}

/// Removes writes abandoned in tmp/ by a crashed writer.
fn clean_tmp(queue: &Queue) {
    match queue.clean_tmp(ABANDONED_AFTER) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} abandoned file(s) from tmp/ (never acknowledged)"),
        Err(e) => tracing::warn!("clean tmp/: {e}"),
    }
}

/// Triggers from smtpd, pickup, local-delivery, master and local users'
/// `postqueue -f`: one frame per connection, capped, with a deadline and
/// unprivileged flushes rate-limited (`mail_ipc::trigger`), so a local
/// user cannot stall the scheduler by holding connections open.
async fn accept_triggers(listener: tokio::net::UnixListener, tx: mpsc::UnboundedSender<Ev>) {
    let gate = mail_ipc::trigger::Gate::new("public/qmgr", mail_ipc::trigger::Limits::default());
    mail_ipc::trigger::serve(listener, gate, move |t| {
        let _ = tx.send(Ev::Trigger(t));
    })
    .await;
}

impl Qmgr {
    fn has_room(&self) -> bool {
        !self.draining && self.active.len() < self.s.active_limit
    }

    /// Reads incoming/ and takes what it finds, as far as there is room:
    /// at start-up, for `Wakeup` and `Flush` (lost or over-long `Queued`
    /// triggers, master's timer) and from [`Qmgr::incoming_tick`].
    fn scan_incoming(&mut self) {
        if !self.has_room() {
            self.scan_needed = true;
            return;
        }
        // Before the read: a file renamed in after this stat changes the
        // mtime again, whether or not the read below saw it.
        let mtime = self.incoming_mtime();
        let ids = match self.queue.scan(State::Incoming) {
            Ok(ids) => ids,
            Err(e) => {
                self.scan_needed = true;
                return tracing::warn!("scan incoming: {e}");
            }
        };
        self.incoming_empty = match mtime {
            Some(m) if ids.is_empty() => Some((m, Instant::now())),
            _ => None,
        };
        self.scan_needed = false;
        let mut ids = ids.into_iter();
        while self.has_room() {
            let Some(id) = ids.next() else { return };
            self.take_incoming(id);
        }
        // Out of room: what this read found waits with the announced ids,
        // so a full active/ costs one read per batch, not one per message.
        let cap = self.waiting_cap();
        for id in ids {
            if self.waiting.len() >= cap {
                self.scan_needed = true;
                return;
            }
            if !self.active.contains_key(&id) {
                self.waiting.push_back(id);
            }
        }
    }

    fn waiting_cap(&self) -> usize {
        self.s.active_limit.saturating_mul(WAITING_PER_ACTIVE)
    }

    /// The one-second tick: a real scan unless nothing can have arrived.
    ///
    /// New mail is announced by `Queued` triggers, so all this tick is for
    /// is mail whose trigger was lost. It skips the read when the last
    /// scan found incoming/ empty and the directory's mtime is the one
    /// seen just before that scan: every rename into (or out of) a
    /// directory sets its mtime, so an unchanged mtime means no file came
    /// in. Where that could miss one: mtimes come from the kernel's coarse
    /// clock (a few ms; whole seconds on some file systems), so a file
    /// renamed in during the same clock step as the change the scan saw
    /// leaves the mtime as it was. Hence a real scan at least every
    /// [`INCOMING_FULL_SCAN`], and for every `Wakeup` (master's, every
    /// 300 s). A failed stat scans.
    fn incoming_tick(&mut self) {
        if !self.scan_needed
            && let Some((seen, at)) = self.incoming_empty
            && at.elapsed() < INCOMING_FULL_SCAN
            && self.incoming_mtime() == Some(seen)
        {
            return;
        }
        self.scan_incoming();
    }

    fn incoming_mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(self.queue.dir(State::Incoming)).and_then(|m| m.modified()).ok()
    }

    /// A `Queued` trigger: takes the named messages from incoming/ without
    /// reading the directory. Those that find active/ full wait in
    /// `waiting` for [`Qmgr::take_waiting`].
    fn take_queued(&mut self, ids: Vec<QueueId>) {
        let cap = self.waiting_cap();
        // Older announcements first, should room have come meanwhile.
        self.take_waiting();
        for id in ids {
            if self.active.contains_key(&id) {
                continue;
            }
            if self.has_room() && self.waiting.is_empty() {
                self.take_incoming(id);
            } else if self.waiting.len() < cap {
                self.waiting.push_back(id);
            } else {
                // Bounded memory: forget the list; the files are still in
                // incoming/, and the next tick reads the directory.
                self.waiting = VecDeque::new();
                self.scan_needed = true;
                return;
            }
        }
    }

    /// Room in active/ again (a message finished): announced ids first,
    /// oldest first; the tick scans for the rest if `scan_needed`.
    fn take_waiting(&mut self) {
        while self.has_room() {
            let Some(id) = self.waiting.pop_front() else { return };
            if !self.active.contains_key(&id) {
                self.take_incoming(id);
            }
        }
    }

    /// Moves one message from incoming/ to active/ and starts it. Not
    /// found is no error: a scan took it first, or the announcement was
    /// wrong (anyone may send one).
    fn take_incoming(&mut self, id: QueueId) {
        if self.active.contains_key(&id) {
            return;
        }
        match self.queue.move_to(&id, State::Incoming, State::Active) {
            Ok(()) => self.activate(id, State::Incoming),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!("{id}: cannot activate: {e}"),
        }
    }

    /// Brings deferred messages whose retry time has come (all of them
    /// when `flush`) back to active. The retry time is the file's mtime.
    fn scan_deferred(&mut self, flush: bool) {
        let ids = match self.queue.scan(State::Deferred) {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!("scan deferred: {e}"),
        };
        let now = SystemTime::now();
        for id in ids {
            if !self.has_room() {
                break;
            }
            let due = flush
                || std::fs::metadata(self.queue.path(State::Deferred, &id))
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t <= now);
            if !due || self.active.contains_key(&id) {
                continue;
            }
            match self.queue.move_to(&id, State::Deferred, State::Active) {
                Ok(()) => self.activate(id, State::Deferred),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("{id}: cannot activate: {e}"),
            }
        }
    }

    /// Loads a message now in active/ and sends its recipients out.
    fn activate(&mut self, id: QueueId, from: State) {
        // The whole file is checked (both checksums, every field) before
        // anything is delivered; a FIFO, link or device in its place is
        // found without opening it for blocking reads.
        let envelope = match self.queue.read_envelope_verified(State::Active, &id) {
            Ok(e) if !policy::arrival_is_sane(e.arrival, now()) => {
                let reason = format!("arrival time {} is in the future", e.arrival);
                return self.quarantine(&id, &reason);
            }
            Ok(e) => e,
            Err(QueueError::Corrupt { reason, .. }) => return self.quarantine(&id, &reason),
            Err(e) if e.is_not_found() => return,
            Err(e) => return tracing::warn!("{id}: {e}"),
        };
        let done_before: HashSet<u32> = match self.queue.read_status(&id) {
            Ok(records) => ledger::finals(&records),
            Err(e) => {
                // Without the log qmgr cannot tell who has their mail
                // already; sending to everyone again would duplicate
                // deliveries and bounces. The message waits instead.
                tracing::warn!(
                    "{id}: cannot read the status log: {e}; message deferred, nothing delivered"
                );
                let after = policy::backoff(
                    policy::age(envelope.arrival, now()),
                    self.s.min_backoff,
                    self.s.max_backoff,
                );
                return self.defer(&id, after);
            }
        };
        let size = std::fs::symlink_metadata(self.queue.path(State::Active, &id))
            .map(|m| m.len())
            .unwrap_or(0);
        if from != State::Active {
            tracing::info!(
                "{id}: from=<{}>, size={size}, nrcpt={} (queue active)",
                envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default(),
                envelope.recipients.len()
            );
        }
        // One group per transport and next hop (for now, each remote
        // domain is its own next hop).
        let mut groups: std::collections::BTreeMap<(Transport, String), Vec<DeliveryRecipient>> =
            Default::default();
        for (i, r) in envelope.recipients.iter().enumerate() {
            let index = i as u32;
            if done_before.contains(&index) {
                continue;
            }
            let t = policy::transport_for(&r.address, &self.s.local_domains);
            let nexthop = match t {
                Transport::Local => String::new(),
                Transport::Smtp => r.address.domain().unwrap_or_default().to_ascii_lowercase(),
            };
            groups.entry((t, nexthop)).or_default().push(DeliveryRecipient {
                index,
                address: r.address.clone(),
                original: r.original.clone(),
            });
        }
        let mut msg =
            Active { envelope, done_before, round: Vec::new(), outstanding: 0, recorded: false };
        // One request per `*_destination_recipient_limit` recipients, so
        // no request outgrows an IPC frame or an agent's patience.
        let (local_limit, default_limit) =
            (self.s.local_recipient_limit, self.s.default_recipient_limit);
        let requests = groups.into_iter().flat_map(|((t, nexthop), recipients)| {
            let limit = match t {
                Transport::Local => local_limit,
                Transport::Smtp => default_limit,
            };
            policy::split(recipients, limit)
                .into_iter()
                .map(move |chunk| (t, nexthop.clone(), chunk))
        });
        for (t, nexthop, recipients) in requests {
            msg.outstanding += 1;
            let req = DeliveryRequest {
                queue_id: id.clone(),
                sender: msg.envelope.sender.clone(),
                arrival: msg.envelope.arrival,
                nexthop,
                recipients,
            };
            let sem = self.agents[&t].clone();
            let socket = self.sockets[&t].clone();
            let tx = self.events.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let asked: Vec<u32> = req.recipients.iter().map(|r| r.index).collect();
                let reply = match sem.acquire_owned().await {
                    Ok(_permit) => ask_agent(&socket, &req).await,
                    Err(_) => Err("qmgr is shutting down".into()),
                };
                let _ = tx.send(Ev::Done { id, asked, reply });
            });
        }
        let nothing_to_do = msg.outstanding == 0;
        self.active.insert(id.clone(), msg);
        if nothing_to_do {
            // Every recipient was already final (a crash after the last
            // record, before the file was removed).
            self.finish(id);
        }
    }

    /// Moves a file qmgr cannot use to corrupt/, with a warning.
    fn quarantine(&self, id: &QueueId, reason: &str) {
        match self.queue.quarantine(id, State::Active) {
            Ok(to) => {
                tracing::warn!("{id}: corrupt queue file: {reason}; moved to {}", to.display())
            }
            Err(e) => tracing::warn!(
                "{id}: corrupt queue file: {reason}; cannot move it to corrupt/: {e}"
            ),
        }
    }

    fn on_done(&mut self, id: QueueId, asked: Vec<u32>, reply: Result<DeliveryReply, String>) {
        let Some(msg) = self.active.get_mut(&id) else { return };
        let t = now();
        let (mut fresh, missing, failure) = match reply {
            Ok(r) => {
                let (records, missing) = ledger::answers(&asked, r.results, t);
                (records, missing, "delivery agent returned no result for this recipient".into())
            }
            Err(text) => (Vec::new(), asked, text),
        };
        for i in missing {
            let outcome = DeliveryStatus::defer(EnhancedStatus(4, 3, 0), failure.clone());
            // The agent did not log these; qmgr does, in the agents' format.
            log_result(&id, &msg.envelope, i, &outcome, "none");
            fresh.push(StatusRecord { recipient: i, outcome, time: t });
        }
        msg.round.extend(fresh);
        msg.outstanding = msg.outstanding.saturating_sub(1);
        if msg.outstanding == 0 {
            return self.finish(id);
        }
        // Other agents are still at work (a message with local and remote
        // recipients): record what is final now rather than after the
        // slowest agent, so a crash meanwhile re-delivers nothing done.
        // Bounces wait for finish(), which queues the report first.
        let (keep, record) = ledger::recordable_now(std::mem::take(&mut msg.round));
        msg.round = keep;
        if record.is_empty() {
            return;
        }
        match self.queue.append_status(&id, &record) {
            Ok(()) => {
                msg.recorded = true;
                msg.done_before.extend(ledger::finals(&record));
            }
            Err(e) => {
                tracing::warn!("{id}: cannot record delivery status: {e}; will retry");
                // Keep them for finish(), which tries again.
                msg.round.extend(record);
            }
        }
    }

    /// All answers are in: remove, bounce, or defer the message.
    fn finish(&mut self, id: QueueId) {
        let Some(mut msg) = self.active.remove(&id) else { return };
        let total = msg.envelope.recipients.len() as u32;
        let age = policy::age(msg.envelope.arrival, now());
        let lifetime = if msg.envelope.sender.is_none() {
            self.s.bounce_lifetime
        } else {
            self.s.max_lifetime
        };
        if policy::expired(age, lifetime) {
            let expired: HashSet<u32> = ledger::expire(&mut msg.round, age).into_iter().collect();
            for r in msg.round.iter().filter(|r| expired.contains(&r.recipient)) {
                log_result(&id, &msg.envelope, r.recipient, &r.outcome, "none");
            }
        }
        let all_final = ledger::all_final(total, &msg.done_before, &msg.round);
        let bounced: Vec<&StatusRecord> = msg
            .round
            .iter()
            .filter(|r| matches!(r.outcome, DeliveryStatus::Bounced { .. }))
            .collect();

        // Fast path: everything delivered in one go. Removing the file is
        // the record; no status log write needed.
        if all_final && bounced.is_empty() && msg.done_before.is_empty() && !msg.recorded {
            return self.remove(&id);
        }
        // The report goes into the queue before the bounced recipients are
        // recorded as final: a crash in between sends it twice, never not
        // at all. If it cannot be queued, nothing is recorded as bounced
        // and the message is tried again later.
        if !bounced.is_empty() && msg.envelope.sender.is_some() {
            let queued = self
                .queue
                .read(State::Active, &id)
                .map_err(mail_submit::Error::from)
                .and_then(|qf| {
                    bounce::enqueue(&self.queue, &self.s, &id, &qf.envelope, &qf.content, &bounced)
                });
            match queued {
                Ok(bid) => tracing::info!("{id}: sender non-delivery notification: {bid}"),
                Err(e) => {
                    tracing::warn!(
                        "{id}: cannot queue the non-delivery notification: {e}; will retry"
                    );
                    let keep: Vec<StatusRecord> = msg
                        .round
                        .iter()
                        .filter(|r| !matches!(r.outcome, DeliveryStatus::Bounced { .. }))
                        .cloned()
                        .collect();
                    if !keep.is_empty()
                        && let Err(e) = self.queue.append_status(&id, &keep)
                    {
                        tracing::warn!("{id}: cannot record delivery status: {e}; will retry");
                    }
                    return self.defer(&id, self.s.min_backoff.min(Duration::from_secs(60)));
                }
            }
        }
        let then = if all_final {
            AfterRecord::Remove
        } else {
            AfterRecord::Defer(policy::backoff(age, self.s.min_backoff, self.s.max_backoff))
        };
        match self.queue.append_status_dir_later(&id, &msg.round) {
            Ok(true) => self.after_sync.push((id, then)),
            Ok(false) => self.act(&id, then),
            Err(e) => {
                // Without the record the recipients are retried later,
                // which is safe (a duplicate at worst); carrying on is not.
                tracing::warn!("{id}: cannot record delivery status: {e}; will retry");
                self.defer(&id, Duration::from_secs(60));
            }
        }
    }

    fn act(&self, id: &QueueId, then: AfterRecord) {
        match then {
            AfterRecord::Remove => self.remove(id),
            AfterRecord::Defer(after) => self.defer(id, after),
        }
    }

    /// One fsync of status/ for every new log written since the last,
    /// then what each of those messages waited for. If it fails, the
    /// messages stay in active/ untouched: the records are in their
    /// logs (synced), and the next rescan of active/ reads them and goes
    /// on from there.
    fn sync_status(&mut self) {
        if self.after_sync.is_empty() {
            return;
        }
        let done = std::mem::take(&mut self.after_sync);
        if let Err(e) = self.queue.sync_status_dir() {
            return tracing::warn!(
                "cannot make {} new status log(s) durable: {e}; those messages are retried",
                done.len()
            );
        }
        for (id, then) in done {
            self.act(&id, then);
        }
    }

    /// Picks up messages in active/ that qmgr is not working on: left by
    /// the previous qmgr, or dropped after a transient error here.
    /// At start-up an error here is fatal (qmgr cannot work without its
    /// queue); later it is a warning for the caller to log.
    fn rescan_active(&mut self) -> Result<(), QueueError> {
        for id in self.queue.scan(State::Active)? {
            if !self.active.contains_key(&id) && !self.draining {
                self.activate(id, State::Active);
            }
        }
        Ok(())
    }

    fn remove(&self, id: &QueueId) {
        match self.queue.retire(id, State::Active) {
            Ok(()) => tracing::info!("{id}: removed"),
            Err(e) => tracing::warn!("{id}: cannot remove: {e}"),
        }
    }

    fn defer(&self, id: &QueueId, after: Duration) {
        if let Err(e) = self.queue.move_to(id, State::Active, State::Deferred) {
            return tracing::warn!("{id}: cannot move to deferred/: {e}");
        }
        let when = policy::retry_at(SystemTime::now(), after);
        if let Err(e) = self.queue.set_retry_time(id, when) {
            tracing::warn!("{id}: cannot set the retry time: {e}");
        }
    }
}

/// Logs a result qmgr decided itself, in the delivery agents' line format
/// (`to=<...>, relay=none, delay=..., dsn=..., status=deferred (...)`), so
/// log tools count it like any other.
fn log_result(
    id: &QueueId,
    envelope: &Envelope,
    index: u32,
    outcome: &DeliveryStatus,
    relay: &str,
) {
    let Some(rcpt) = envelope.recipients.get(index as usize) else { return };
    let since = policy::delay_origin(id.created(), envelope.arrival);
    let delay = SystemTime::now().duration_since(since).map_or(0.0, |d| d.as_secs_f64());
    let line = DeliveryLine {
        queue_id: id,
        to: &rcpt.address.to_string(),
        orig_to: &rcpt.original,
        relay,
        delay,
        delays: None,
        status: outcome,
    };
    tracing::info!("{}", line.format());
}

/// One request to a delivery agent. Errors are texts for the defer
/// reason, in Postfix's words where it has them.
async fn ask_agent(
    socket: &std::path::Path,
    req: &DeliveryRequest,
) -> Result<DeliveryReply, String> {
    let name = socket.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        format!("delivery temporarily suspended: connect to transport private/{name}: {e}")
    })?;
    let exchange = async {
        mail_ipc::write_frame_async(&mut stream, req).await?;
        mail_ipc::read_frame_async::<DeliveryReply>(&mut stream, mail_ipc::frame::MAX_FRAME).await
    };
    match tokio::time::timeout(AGENT_TIMEOUT, exchange).await {
        Ok(Ok(Some(reply))) => Ok(reply),
        Ok(Ok(None)) => {
            Err(format!("delivery agent {name} closed the connection without an answer"))
        }
        Ok(Err(e)) => Err(format!("delivery agent {name}: {e}")),
        Err(_) => {
            Err(format!("delivery agent {name} did not answer within {}s", AGENT_TIMEOUT.as_secs()))
        }
    }
}
