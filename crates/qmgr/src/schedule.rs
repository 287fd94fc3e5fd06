//! The scheduling loop: activate, route, dispatch per destination,
//! record, notify, finish.
//!
//! Severities: fatal only at start-up (no listener, queue unreadable,
//! a bad table name); after that every problem with one message is a
//! warning about that message, and the loop goes on.

use crate::bounce::{self, Action, Item, Kind};
use crate::dest::{self, Admit, DestState, Limits, Suspended};
use crate::ledger;
use crate::policy;
use crate::resolve::{Route, Router};
use mail_daemon::{Daemon, Listener, Stop};
use mail_ipc::delivery::{DeliveryRecipient, DeliveryReply, DeliveryRequest, RecipientResult};
use mail_ipc::trigger::Trigger;
use mail_queue::{Envelope, Error as QueueError, Queue, State, StatusRecord};
use mail_types::logline::DeliveryLine;
use mail_types::{DeliveryStatus, EnhancedStatus, QueueId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

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
/// Deferred messages taken back per turn of the loop: a queue run that
/// finds thousands due interleaves them with new mail and results rather
/// than reading them all in one go.
const DUE_PER_TURN: usize = 100;
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
    pub(crate) initial_concurrency: usize,
    pub(crate) failed_cohort_limit: usize,
    /// Most recipients per request to local delivery.
    pub(crate) local_recipient_limit: usize,
    /// Most recipients per request to any other agent.
    pub(crate) default_recipient_limit: usize,
    /// Most parallel requests to local delivery.
    pub(crate) local_concurrency: usize,
    /// Transports with limits of their own: (name, concurrency, recipients).
    pub(crate) transport_limits: Vec<(&'static str, usize, usize)>,
    pub(crate) delay_warning: Duration,
    pub(crate) host: bounce::Host,
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
            initial_concurrency: q.initial_destination_concurrency,
            failed_cohort_limit: q.default_destination_concurrency_failed_cohort_limit,
            local_recipient_limit: q.local_destination_recipient_limit,
            default_recipient_limit: q.default_destination_recipient_limit,
            local_concurrency: q.local_destination_concurrency_limit,
            transport_limits: vec![
                ("smtp", q.smtp_destination_concurrency_limit, q.smtp_destination_recipient_limit),
                (
                    "relay",
                    q.relay_destination_concurrency_limit,
                    q.relay_destination_recipient_limit,
                ),
            ],
            delay_warning: q.delay_warning_time,
            host: bounce::Host {
                myhostname: common.myhostname,
                mail_name: common.mail_name,
                max_lifetime: q.maximal_queue_lifetime,
            },
        }
    }
}

impl Settings {
    /// A transport's `*_destination_concurrency_limit` and
    /// `_recipient_limit`: local delivery's, its own, else the defaults.
    fn limits_of(&self, local: bool, transport: &str) -> (usize, usize) {
        if local {
            return (self.local_concurrency, self.local_recipient_limit);
        }
        self.transport_limits
            .iter()
            .find(|(t, _, _)| *t == transport)
            .map_or((self.concurrency, self.default_recipient_limit), |(_, c, r)| (*c, *r))
    }

    pub(crate) fn concurrency_limit(&self, local: bool, transport: &str) -> usize {
        self.limits_of(local, transport).0
    }

    pub(crate) fn recipient_limit(&self, local: bool, transport: &str) -> usize {
        self.limits_of(local, transport).1
    }
}

/// The router: `mydestination` as mail_config::LocalDomains normalises
/// it (lower case, no trailing dot), the test smtpd uses too.
fn router_from_config(c: &mail_config::Main) -> anyhow::Result<Router> {
    let common = mail_config::settings::Common::new(c);
    let q = mail_config::settings::Qmgr::new(c);
    let mut files = Vec::new();
    for spec in &q.transport_maps {
        let path = mail_lookup::maps::map_file(spec, &q.config_directory)
            .map_err(|e| anyhow::anyhow!("transport_maps: {e}"))?;
        files.push(path);
    }
    let relay_domains =
        mail_lookup::DomainList::new("relay_domains", &q.relay_domains, &q.config_directory)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Router::new(
        common.mydestination,
        mail_lookup::maps::Maps::new(files),
        &q.relayhost,
        &q.default_transport,
        &q.local_transport,
        &common.recipient_delimiter,
    )
    .with_relay(relay_domains, &q.relay_transport))
}

/// A destination: a transport and a next hop.
type DestKey = (String, String);

enum Ev {
    Trigger(Trigger),
    Done {
        id: QueueId,
        key: DestKey,
        asked: Vec<u32>,
        reply: Result<DeliveryReply, String>,
        /// An agent was asked (false: deferred without an attempt, the
        /// destination being dead), so the answer is feedback.
        attempted: bool,
    },
    Stop(Stop),
}

/// One request waiting for, or holding, a slot of its destination.
struct Job {
    key: DestKey,
    req: DeliveryRequest,
}

/// A destination's queue: its feedback state and the requests waiting
/// for a slot, oldest first.
struct Dest {
    state: DestState,
    pending: VecDeque<Job>,
    /// Due deferred messages left unread until the destination proves
    /// alive (then they are taken) or dead (then rescheduled unread).
    /// A set: a later queue run finds the same files due again.
    held: HashSet<QueueId>,
}

impl Dest {
    fn new(limits: Limits) -> Dest {
        Dest { state: DestState::new(limits), pending: VecDeque::new(), held: HashSet::new() }
    }

    /// Nothing to remember.
    fn idle(&self, now: Instant) -> bool {
        self.pending.is_empty() && self.held.is_empty() && self.state.idle(now)
    }

    /// Not yet answering, with a window's worth of requests waiting
    /// beyond those in flight: more mail read for it now would most
    /// likely be deferred unread if it is dead.
    fn saturated(&self) -> bool {
        !self.state.proven() && self.pending.len() >= self.state.window()
    }
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
    /// Where each recipient handed to an agent this round went.
    routes: HashMap<u32, DestKey>,
    /// The delay warning was sent in an earlier round.
    warned: bool,
}

struct Qmgr {
    queue: Queue,
    s: Settings,
    router: Router,
    active: HashMap<QueueId, Active>,
    dests: HashMap<DestKey, Dest>,
    /// Each transport's socket, from master.toml, looked up once.
    sockets: HashMap<String, PathBuf>,
    master: mail_config::MasterFile,
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
    /// Deferred messages and the sites (recipient domains, next-hop
    /// hosts) of their undelivered recipients, for `postqueue -s`:
    /// filled as qmgr defers, pruned at each deferred-queue scan.
    deferred_sites: HashMap<QueueId, Parked>,
    /// Deferred messages this qmgr has not indexed (deferred by an
    /// earlier one): read once, at the first site flush.
    unindexed: HashSet<QueueId>,
    /// Messages flushed by id: their destinations get another chance
    /// even if dead.
    revive_for: HashSet<QueueId>,
    /// Deferred messages found due (by a queue run or a flush), taken
    /// [`DUE_PER_TURN`] at a time.
    due: VecDeque<QueueId>,
    /// Due messages an operator flushed: read whatever their
    /// destinations' state, as asked.
    flushed: HashSet<QueueId>,
    /// Due messages given a new retry time without being read, their
    /// destinations being dead, since the last queue run's report.
    rescheduled: usize,
}

/// What qmgr remembers of a message it deferred: enough to find it for a
/// site flush, and to leave it unread while its destinations are dead.
#[derive(Debug, Clone)]
struct Parked {
    /// Sites (recipient domains, next-hop hosts) of its undelivered
    /// recipients.
    sites: Vec<String>,
    /// Their destinations, if every undelivered recipient went to one
    /// (`None`: some were answered by qmgr itself, or unknown).
    dests: Option<Vec<DestKey>>,
    arrival: u64,
    lifetime: Duration,
    /// No delay warning is owed before it expires.
    warned: bool,
}

/// What [`Qmgr::finish`] does with a message once its results are
/// durable.
#[derive(Debug, Clone)]
enum AfterRecord {
    Remove,
    /// Retry after this long; what the deferred index keeps of it.
    Defer(Duration, Parked),
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
    let router = router_from_config(&daemon.config)?;
    let mut q = Qmgr {
        queue,
        s,
        router,
        active: HashMap::new(),
        dests: HashMap::new(),
        sockets: HashMap::new(),
        master: daemon.master.clone(),
        events: tx.clone(),
        draining: false,
        waiting: VecDeque::new(),
        scan_needed: false,
        incoming_empty: None,
        after_sync: Vec::new(),
        deferred_sites: HashMap::new(),
        unindexed: HashSet::new(),
        revive_for: HashSet::new(),
        due: VecDeque::new(),
        rescheduled: 0,
        flushed: HashSet::new(),
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
    // The first tick of an interval is immediate; start-up just scanned.
    deferred_tick.reset();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Ev::Trigger(Trigger::Wakeup)) => q.scan_incoming(),
                Some(Ev::Trigger(Trigger::Queued(ids))) => q.take_queued(ids),
                Some(Ev::Trigger(Trigger::Flush)) => {
                    for d in q.dests.values_mut() {
                        d.state.revive();
                    }
                    q.scan_incoming();
                    q.scan_deferred(true);
                }
                Some(Ev::Trigger(Trigger::FlushSite(site))) => q.flush_site(&site),
                Some(Ev::Trigger(Trigger::FlushId(id))) => q.flush_id(id),
                Some(Ev::Done { id, key, asked, reply, attempted }) => {
                    q.on_done(id, key, asked, reply, attempted);
                    // Results that came in meanwhile (while the last
                    // fsync ran) are recorded in this turn too and share
                    // its status/ fsync (group commit).
                    for _ in 1..RESULTS_PER_TURN {
                        match rx.try_recv() {
                            Ok(Ev::Done { id, key, asked, reply, attempted }) => {
                                q.on_done(id, key, asked, reply, attempted)
                            }
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
            _ = std::future::ready(()), if !q.due.is_empty() && q.has_room() => q.take_due(),
            _ = incoming_tick.tick() => q.incoming_tick(),
            _ = deferred_tick.tick() => {
                if let Err(e) = q.rescan_active() {
                    tracing::warn!("scan active: {e}");
                }
                if q.rescheduled > 0 {
                    tracing::info!(
                        "{} deferred message(s) for dead destinations rescheduled without an attempt",
                        q.rescheduled
                    );
                    q.rescheduled = 0;
                }
                q.scan_deferred(false);
                q.forget_idle_destinations();
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
    /// The one read of deferred/ per queue run also prunes the site
    /// index of messages that left it (postsuper -d, -h, -r).
    fn scan_deferred(&mut self, flush: bool) {
        let ids = match self.queue.scan(State::Deferred) {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!("scan deferred: {e}"),
        };
        let present: HashSet<&QueueId> = ids.iter().collect();
        self.deferred_sites.retain(|id, _| present.contains(id));
        self.unindexed.retain(|id| present.contains(id));
        self.flushed.retain(|id| present.contains(id));
        let now = SystemTime::now();
        let queued: HashSet<QueueId> = self.due.iter().cloned().collect();
        for id in ids {
            if flush {
                self.flushed.insert(id.clone());
            }
            if queued.contains(&id) || self.active.contains_key(&id) {
                continue;
            }
            let due = flush
                || std::fs::metadata(self.queue.path(State::Deferred, &id))
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t <= now);
            if due {
                self.due.push_back(id);
            } else if !self.deferred_sites.contains_key(&id) {
                self.unindexed.insert(id);
            }
        }
    }

    /// Takes the next due deferred messages back, as far as there is room.
    /// One whose every destination is dead is not read at all: it gets
    /// its next retry time (one utime), as a suspended attempt would
    /// have given it, unless it is to expire or owes a delay warning.
    fn take_due(&mut self) {
        let (now_i, t) = (Instant::now(), now());
        for _ in 0..DUE_PER_TURN {
            if !self.has_room() {
                return;
            }
            let Some(id) = self.due.pop_front() else { return };
            if self.active.contains_key(&id) {
                continue;
            }
            if self.flushed.remove(&id) {
                self.take_deferred(id);
                continue;
            }
            if self.reschedule_if_dead(&id, now_i, t) {
                continue;
            }
            if let Some(key) = self.deferred_sites.get(&id).and_then(|p| self.hold_for(p))
                && let Some(d) = self.dests.get_mut(&key)
            {
                d.held.insert(id);
                continue;
            }
            self.take_deferred(id);
        }
    }

    /// Gives a deferred message its next retry time without reading it,
    /// if its destinations are all dead ([`Qmgr::still_dead`]). False if
    /// it is to be read after all.
    fn reschedule_if_dead(&mut self, id: &QueueId, now: Instant, t: u64) -> bool {
        let Some(p) = self.deferred_sites.get(id) else { return false };
        if !self.still_dead(p, now, t) {
            return false;
        }
        let after =
            policy::backoff(policy::age(p.arrival, t), self.s.min_backoff, self.s.max_backoff);
        match self.queue.set_retry_time(id, policy::retry_at(SystemTime::now(), after)) {
            Ok(()) => {
                self.rescheduled += 1;
                true
            }
            Err(e) if e.is_not_found() => {
                // Gone (postsuper -d) or moved: nothing to read either.
                self.deferred_sites.remove(id);
                true
            }
            Err(e) => {
                tracing::warn!("{id}: cannot set the retry time: {e}");
                false
            }
        }
    }

    /// The destination to hold a due message behind: one that has not
    /// answered yet and has enough waiting, when all of the message's
    /// destinations are such.
    fn hold_for(&self, p: &Parked) -> Option<DestKey> {
        let dests = p.dests.as_ref()?;
        let all = !dests.is_empty()
            && dests.iter().all(|k| self.dests.get(k).is_some_and(Dest::saturated));
        if all { dests.first().cloned() } else { None }
    }

    /// Whether a deferred message can wait unread: all its destinations
    /// are dead, it has not expired, and no delay warning is due.
    fn still_dead(&self, p: &Parked, now: Instant, t: u64) -> bool {
        let Some(dests) = &p.dests else { return false };
        let age = policy::age(p.arrival, t);
        !dests.is_empty()
            && dests.iter().all(|k| self.dests.get(k).is_some_and(|d| d.state.is_dead(now)))
            && !policy::expired(age, p.lifetime)
            && (p.warned || self.s.delay_warning.is_zero() || age < self.s.delay_warning)
    }

    /// Moves one deferred message back to active/ and starts it.
    fn take_deferred(&mut self, id: QueueId) {
        self.deferred_sites.remove(&id);
        self.unindexed.remove(&id);
        match self.queue.move_to(&id, State::Deferred, State::Active) {
            Ok(()) => self.activate(id, State::Deferred),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!("{id}: cannot activate: {e}"),
        }
    }

    /// `postqueue -s SITE`: the deferred mail with a recipient at SITE
    /// (its domain, or a host of its next hop) now, and SITE's dead
    /// destinations revived. No read of deferred/: the index knows,
    /// after reading once the envelopes of messages an earlier qmgr
    /// deferred.
    fn flush_site(&mut self, site: &str) {
        let site = policy::site_key(site);
        if site.is_empty() {
            return;
        }
        tracing::info!("flush site {site}");
        for ((_, nexthop), d) in self.dests.iter_mut() {
            if policy::site_keys(None, nexthop).contains(&site) {
                d.state.revive();
            }
        }
        for id in std::mem::take(&mut self.unindexed) {
            match self.queue.read_envelope(State::Deferred, &id) {
                Ok(e) => {
                    let sites = e
                        .recipients
                        .iter()
                        .flat_map(|r| {
                            let nexthop = match self.router.resolve(&r.address) {
                                Route::Deliver { nexthop, .. } => nexthop,
                                _ => String::new(),
                            };
                            policy::site_keys(r.address.domain(), &nexthop)
                        })
                        .collect();
                    let parked = Parked {
                        sites,
                        dests: None,
                        arrival: e.arrival,
                        lifetime: self.s.max_lifetime,
                        warned: false,
                    };
                    self.deferred_sites.insert(id, parked);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("{id}: {e}"),
            }
        }
        let ids: Vec<QueueId> = self
            .deferred_sites
            .iter()
            .filter(|(_, p)| p.sites.contains(&site))
            .map(|(id, _)| id.clone())
            .collect();
        let queued: HashSet<QueueId> = self.due.iter().cloned().collect();
        self.flushed.extend(ids.iter().cloned());
        self.due.extend(ids.into_iter().filter(|id| !queued.contains(id)));
    }

    /// `postqueue -i ID`: that message now, wherever it waits, its dead
    /// destinations given another chance.
    fn flush_id(&mut self, id: QueueId) {
        if self.active.contains_key(&id) {
            return;
        }
        tracing::info!("{id}: flush");
        self.revive_for.insert(id.clone());
        match self.queue.locate(&id) {
            Some(State::Deferred) => self.take_deferred(id.clone()),
            Some(State::Incoming) => self.take_incoming(id.clone()),
            _ => {}
        }
        self.revive_for.remove(&id);
    }

    /// Loads a message now in active/, routes its recipients, answers
    /// those qmgr answers itself (error:, discard:, a table failure), and
    /// sends the rest to their destinations.
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
        let (done_before, last_record): (HashSet<u32>, Option<u64>) =
            match self.queue.read_status(&id) {
                Ok(records) => (ledger::finals(&records), records.iter().map(|r| r.time).max()),
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
                    return self.defer(&id, after, None);
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
        let warned = policy::delay_warned(envelope.arrival, self.s.delay_warning, last_record);
        let mut msg = Active {
            envelope,
            done_before,
            round: Vec::new(),
            outstanding: 0,
            recorded: false,
            routes: HashMap::new(),
            warned,
        };
        // Each recipient routed once per activation; one group per
        // destination.
        let t = now();
        let mut groups: BTreeMap<DestKey, Vec<DeliveryRecipient>> = BTreeMap::new();
        for (i, r) in msg.envelope.recipients.iter().enumerate() {
            let index = i as u32;
            if msg.done_before.contains(&index) {
                continue;
            }
            let outcome = match self.router.resolve(&r.address) {
                Route::Deliver { transport, nexthop } => {
                    let key = (transport, nexthop);
                    msg.routes.insert(index, key.clone());
                    groups.entry(key).or_default().push(DeliveryRecipient {
                        index,
                        address: r.address.clone(),
                        original: r.original.clone(),
                    });
                    continue;
                }
                // error(8) and discard(8), inline.
                Route::Error { dsn, text } => DeliveryStatus::bounce(dsn, text),
                Route::Discard { text } => DeliveryStatus::sent(text),
                Route::Defer { dsn, text } => DeliveryStatus::defer(dsn, text),
            };
            log_result(&id, &msg.envelope, index, &outcome, "none");
            msg.round.push(StatusRecord { recipient: index, outcome, time: t });
        }
        // One request per `*_destination_recipient_limit` recipients, so
        // no request outgrows an IPC frame or an agent's patience.
        let mut jobs = Vec::new();
        for (key, recipients) in groups {
            let limit = self.s.recipient_limit(self.router.is_local(&key.0), &key.0);
            for chunk in policy::split(recipients, limit) {
                jobs.push(Job {
                    key: key.clone(),
                    req: DeliveryRequest {
                        queue_id: id.clone(),
                        sender: msg.envelope.sender.clone(),
                        arrival: msg.envelope.arrival,
                        nexthop: key.1.clone(),
                        recipients: chunk,
                    },
                });
            }
        }
        msg.outstanding = jobs.len();
        self.active.insert(id.clone(), msg);
        if jobs.is_empty() {
            // Every recipient was final already (a crash after the last
            // record, before the file was removed), or answered here.
            return self.finish(id);
        }
        for job in jobs {
            self.dispatch(job);
        }
    }

    fn limits_for(&self, transport: &str) -> Limits {
        Limits {
            initial: self.s.initial_concurrency,
            limit: self.s.concurrency_limit(self.router.is_local(transport), transport),
            failed_cohorts: self.s.failed_cohort_limit,
            dead_for: self.s.min_backoff,
            // Local delivery keeps the fixed window it always had (the
            // inbound path's throughput); see dest.rs.
            fixed: self.router.is_local(transport),
        }
    }

    /// Starts a request, queues it behind its destination's window, or,
    /// for a dead destination, defers it at once without an attempt.
    fn dispatch(&mut self, job: Job) {
        let now = Instant::now();
        let limits = self.limits_for(&job.key.0);
        let revive = self.revive_for.contains(&job.req.queue_id);
        let d = self.dests.entry(job.key.clone()).or_insert_with(|| Dest::new(limits));
        if revive {
            d.state.revive();
        }
        match d.state.admit(now) {
            Admit::Start => {
                d.state.started();
                self.start(job);
            }
            Admit::Wait => d.pending.push_back(job),
            Admit::Suspend(why) => self.suspend(job, &why),
        }
    }

    fn socket_for(&mut self, transport: &str) -> PathBuf {
        if let Some(p) = self.sockets.get(transport) {
            return p.clone();
        }
        // A transport without a unix service of that name in master.toml
        // (the SMTP client not installed, say) is looked for at its
        // default place, where nobody answers: its mail waits.
        let root = self.queue.root().to_owned();
        let path = self
            .master
            .socket_path(&root, transport)
            .unwrap_or_else(|_| root.join("private").join(transport));
        self.sockets.insert(transport.to_owned(), path.clone());
        path
    }

    fn start(&mut self, job: Job) {
        let socket = self.socket_for(&job.key.0);
        let tx = self.events.clone();
        tokio::spawn(async move {
            let asked: Vec<u32> = job.req.recipients.iter().map(|r| r.index).collect();
            let reply = ask_agent(&socket, &job.req).await;
            let id = job.req.queue_id;
            let _ = tx.send(Ev::Done { id, key: job.key, asked, reply, attempted: true });
        });
    }

    /// Defers a request's recipients without asking anyone, logged as
    /// the agents log (`relay=none`), answered through the loop like any
    /// other result.
    fn suspend(&mut self, job: Job, why: &Suspended) {
        let id = job.req.queue_id;
        let status = DeliveryStatus::defer(why.dsn, why.text.clone());
        if let Some(msg) = self.active.get(&id) {
            for r in &job.req.recipients {
                log_result(&id, &msg.envelope, r.index, &status, "none");
            }
        }
        let asked: Vec<u32> = job.req.recipients.iter().map(|r| r.index).collect();
        let results =
            asked.iter().map(|&index| RecipientResult { index, status: status.clone() }).collect();
        let _ = self.events.send(Ev::Done {
            id,
            key: job.key,
            asked,
            reply: Ok(DeliveryReply { results }),
            attempted: false,
        });
    }

    /// A request to `key` ended: its feedback, then the next waiting
    /// requests (or, if the destination just died, all of them deferred).
    fn feedback(&mut self, key: &DestKey, asked: &[u32], reply: &Result<DeliveryReply, String>) {
        let now = Instant::now();
        let fb = dest::feedback(asked, reply);
        let Some(d) = self.dests.get_mut(key) else { return };
        let mut start = Vec::new();
        let mut suspend = Vec::new();
        let mut why = None;
        if d.state.finished(fb, now) {
            if let Admit::Suspend(w) = d.state.admit(now) {
                tracing::warn!(
                    "{}/{}: destination dead for {}s: {} ({} request(s) waiting deferred)",
                    key.0,
                    if key.1.is_empty() { "-" } else { &key.1 },
                    self.s.min_backoff.as_secs(),
                    w.text,
                    d.pending.len()
                );
                why = Some(w);
                suspend.extend(d.pending.drain(..));
            }
        } else {
            while !d.pending.is_empty() && d.state.admit(now) == Admit::Start {
                d.state.started();
                start.extend(d.pending.pop_front());
            }
        }
        // The held mail learns the verdict: alive, read it; dead, it
        // waits unread (unless it expires or owes a warning).
        let held = if why.is_some() || d.state.proven() {
            std::mem::take(&mut d.held)
        } else {
            HashSet::new()
        };
        if d.idle(now) {
            self.dests.remove(key);
        }
        for job in start {
            self.start(job);
        }
        if let Some(why) = why {
            for job in suspend {
                self.suspend(job, &why);
            }
        }
        let (t, mut back) = (policy::now_secs(SystemTime::now()), Vec::new());
        for id in held {
            if !self.reschedule_if_dead(&id, now, t) {
                back.push(id);
            }
        }
        for id in back.into_iter().rev() {
            self.due.push_front(id);
        }
    }

    /// Drops the state of destinations with nothing to do (their slow
    /// start begins again next time, as in Postfix).
    fn forget_idle_destinations(&mut self) {
        let now = Instant::now();
        self.dests.retain(|_, d| !d.idle(now));
    }

    /// Appends this round's outcomes to the status log, bounces excepted:
    /// their notice is not queued yet, so those recipients are tried
    /// again. `then` ends the warning when even that fails.
    fn record_all_but_bounces(&self, id: &QueueId, msg: &Active, then: &str) {
        let keep: Vec<StatusRecord> = msg
            .round
            .iter()
            .filter(|r| !matches!(r.outcome, DeliveryStatus::Bounced { .. }))
            .cloned()
            .collect();
        if !keep.is_empty()
            && let Err(e) = self.queue.append_status(id, &keep)
        {
            tracing::warn!("{id}: cannot record delivery status: {e}{then}");
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

    fn on_done(
        &mut self,
        id: QueueId,
        key: DestKey,
        asked: Vec<u32>,
        reply: Result<DeliveryReply, String>,
        attempted: bool,
    ) {
        if attempted {
            self.feedback(&key, &asked, &reply);
        }
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
        // Bounces, and deliveries that owe the sender a success notice,
        // wait for finish(), which queues the notice first.
        let (mut keep, record) = ledger::recordable_now(std::mem::take(&mut msg.round));
        let (owed, record): (Vec<StatusRecord>, Vec<StatusRecord>) =
            record.into_iter().partition(|r| {
                matches!(r.outcome, DeliveryStatus::Sent { .. })
                    && msg.envelope.sender.is_some()
                    && msg
                        .envelope
                        .recipients
                        .get(r.recipient as usize)
                        .is_some_and(|rc| bounce::wants(rc, Kind::Success))
            });
        keep.extend(owed);
        msg.round = keep;
        if record.is_empty() {
            return;
        }
        // A message deleted meanwhile (postsuper -d) gets no new status
        // log; one put on hold keeps its results, so that its release
        // delivers nothing twice.
        if self.queue.locate(&id).is_none() {
            return;
        }
        let Some(msg) = self.active.get_mut(&id) else { return };
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

    /// What the deferred index keeps of `msg` after this round: the
    /// sites and destinations of the recipients still to be delivered.
    fn parked_of(&self, msg: &Active) -> Parked {
        let finals = ledger::finals(&msg.round);
        let mut sites = Vec::new();
        let mut dests = Some(Vec::new());
        for (i, r) in msg.envelope.recipients.iter().enumerate() {
            let i = i as u32;
            if msg.done_before.contains(&i) || finals.contains(&i) {
                continue;
            }
            let route = msg.routes.get(&i);
            sites.extend(policy::site_keys(r.address.domain(), route.map_or("", |k| k.1.as_str())));
            match (route, dests.as_mut()) {
                (Some(k), Some(d)) => {
                    if !d.contains(k) {
                        d.push(k.clone());
                    }
                }
                _ => dests = None,
            }
        }
        sites.sort_unstable();
        sites.dedup();
        let arrival = msg.envelope.arrival;
        Parked {
            sites,
            dests,
            arrival,
            lifetime: if msg.envelope.sender.is_none() {
                self.s.bounce_lifetime
            } else {
                self.s.max_lifetime
            },
            // The rule activate() applies next time, this round's records
            // being written now.
            warned: policy::delay_warned(arrival, self.s.delay_warning, Some(now())),
        }
    }

    /// All answers are in: notify, record, then remove or defer.
    fn finish(&mut self, id: QueueId) {
        let Some(mut msg) = self.active.remove(&id) else { return };
        // The operator's tools may have taken the file meanwhile (one
        // stat when they did not).
        let here = if self.queue.path(State::Active, &id).exists() {
            Some(State::Active)
        } else {
            self.queue.locate(&id)
        };
        match here {
            Some(State::Active) => {}
            None => {
                return tracing::warn!(
                    "{id}: removed from the queue during delivery; its results are dropped"
                );
            }
            Some(elsewhere) => {
                // Held or requeued: keep what is known (bounces excepted:
                // their notice is not sent yet, so they are tried again),
                // and leave the file where it is.
                self.record_all_but_bounces(&id, &msg, "");
                return tracing::warn!(
                    "{id}: moved to {}/ during delivery; results recorded, file left there",
                    elsewhere.dir_name()
                );
            }
        }
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
        let notices = self.notices_due(&msg, all_final, age);
        let bounced = msg.round.iter().any(|r| matches!(r.outcome, DeliveryStatus::Bounced { .. }));

        // Fast path: everything delivered in one go, nobody to notify.
        // Removing the file is the record; no status log write needed.
        if all_final
            && !bounced
            && notices.is_empty()
            && msg.done_before.is_empty()
            && !msg.recorded
        {
            return self.remove(&id);
        }
        if bounced && msg.envelope.sender.is_none() {
            tracing::info!("{id}: undeliverable mail from <>: no notification is sent about it");
        }
        // A notice goes into the queue before the recipients it is about
        // are recorded as final: a crash in between sends it twice, never
        // not at all. A failure report that cannot be queued leaves its
        // bounces unrecorded, to be tried again later.
        if !notices.is_empty() {
            let content = match self.queue.read(State::Active, &id) {
                Ok(qf) => qf.content,
                Err(e) if e.is_not_found() => {
                    return tracing::warn!(
                        "{id}: removed from the queue during delivery; its results are dropped"
                    );
                }
                Err(e) => {
                    tracing::warn!("{id}: cannot read the message for its notices: {e}");
                    Vec::new()
                }
            };
            let t = now();
            for (kind, items) in &notices {
                let notice = bounce::Notice {
                    kind: *kind,
                    id: &id,
                    envelope: &msg.envelope,
                    content: &content,
                    items,
                    now: t,
                };
                let queued = bounce::enqueue(&self.queue, &self.s.host, &notice);
                let what = match kind {
                    Kind::Failure => "non-delivery",
                    Kind::Delay => "delay",
                    Kind::Success => "delivery status",
                };
                match queued {
                    Ok(nid) => tracing::info!("{id}: sender {what} notification: {nid}"),
                    Err(e) if *kind == Kind::Failure => {
                        tracing::warn!(
                            "{id}: cannot queue the non-delivery notification: {e}; will retry"
                        );
                        self.record_all_but_bounces(&id, &msg, "; will retry");
                        let parked = self.parked_of(&msg);
                        return self.defer(
                            &id,
                            self.s.min_backoff.min(Duration::from_secs(60)),
                            Some(parked),
                        );
                    }
                    // Delay and success notices are courtesy: the mail
                    // itself is not held back for them.
                    Err(e) => tracing::warn!("{id}: cannot queue the {what} notification: {e}"),
                }
            }
        }
        let then = if all_final {
            AfterRecord::Remove
        } else {
            AfterRecord::Defer(
                policy::backoff(age, self.s.min_backoff, self.s.max_backoff),
                self.parked_of(&msg),
            )
        };
        match self.queue.append_status_dir_later(&id, &msg.round) {
            Ok(true) => self.after_sync.push((id, then)),
            Ok(false) => self.act(&id, then),
            Err(e) => {
                // Without the record the recipients are retried later,
                // which is safe (a duplicate at worst); carrying on is not.
                tracing::warn!("{id}: cannot record delivery status: {e}; will retry");
                let parked = self.parked_of(&msg);
                self.defer(&id, Duration::from_secs(60), Some(parked));
            }
        }
    }

    /// The notices this round owes the sender, by kind: failures of
    /// recipients that did not say NOTIFY=NEVER (or leave out FAILURE),
    /// deliveries of those that asked for SUCCESS, and, once per message
    /// when `delay_warning_time` has passed, delays of those that did
    /// not refuse DELAY. None for mail from `<>`.
    fn notices_due(&self, msg: &Active, all_final: bool, age: Duration) -> Vec<(Kind, Vec<Item>)> {
        if msg.envelope.sender.is_none() {
            return Vec::new();
        }
        let wants = |i: u32, kind| {
            msg.envelope.recipients.get(i as usize).is_some_and(|r| bounce::wants(r, kind))
        };
        let mut failed = Vec::new();
        let mut sent = Vec::new();
        let mut delayed = Vec::new();
        for r in &msg.round {
            let (kind, action, list) = match &r.outcome {
                DeliveryStatus::Bounced { .. } => (Kind::Failure, Action::Failed, &mut failed),
                DeliveryStatus::Sent { .. } => {
                    let local =
                        msg.routes.get(&r.recipient).is_none_or(|k| self.router.is_local(&k.0));
                    let action = if local { Action::Delivered } else { Action::Relayed };
                    (Kind::Success, action, &mut sent)
                }
                DeliveryStatus::Deferred { .. } => (Kind::Delay, Action::Delayed, &mut delayed),
            };
            if wants(r.recipient, kind) {
                list.push(Item { index: r.recipient, action, status: r.outcome.clone() });
            }
        }
        let delay_due = !all_final
            && !msg.warned
            && !self.s.delay_warning.is_zero()
            && age >= self.s.delay_warning;
        let mut out = Vec::new();
        if !failed.is_empty() {
            out.push((Kind::Failure, failed));
        }
        if !sent.is_empty() {
            out.push((Kind::Success, sent));
        }
        if delay_due && !delayed.is_empty() {
            out.push((Kind::Delay, delayed));
        }
        out
    }

    fn act(&mut self, id: &QueueId, then: AfterRecord) {
        match then {
            AfterRecord::Remove => self.remove(id),
            AfterRecord::Defer(after, parked) => self.defer(id, after, Some(parked)),
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
            Err(e) if e.is_not_found() => {
                tracing::warn!("{id}: already removed from active/ by someone else")
            }
            Err(e) => tracing::warn!("{id}: cannot remove: {e}"),
        }
    }

    /// Moves a message to deferred/ with its retry time, and indexes it
    /// (`None`: not known, read at the next site flush). A file
    /// someone else moved or removed is left alone.
    fn defer(&mut self, id: &QueueId, after: Duration, parked: Option<Parked>) {
        if let Err(e) = self.queue.move_to(id, State::Active, State::Deferred) {
            if e.is_not_found() {
                return tracing::warn!("{id}: no longer in active/; left where it is");
            }
            return tracing::warn!("{id}: cannot move to deferred/: {e}");
        }
        let when = policy::retry_at(SystemTime::now(), after);
        if let Err(e) = self.queue.set_retry_time(id, when) {
            tracing::warn!("{id}: cannot set the retry time: {e}");
        }
        match parked {
            Some(parked) => {
                self.deferred_sites.insert(id.clone(), parked);
            }
            None => {
                self.unindexed.insert(id.clone());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(main_toml: &str) -> Settings {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("main.toml"), main_toml).unwrap();
        Settings::from_config(&mail_config::Main::load(d.path()).unwrap())
    }

    #[test]
    fn per_transport_limits_default_to_the_default_ones() {
        let s = settings("default_destination_concurrency_limit = 7\n");
        assert_eq!(s.concurrency_limit(false, "smtp"), 7);
        assert_eq!(s.concurrency_limit(false, "relay"), 7);
        assert_eq!(s.concurrency_limit(false, "custom"), 7);
        assert_eq!(s.concurrency_limit(true, "local"), 7);
        assert_eq!(s.recipient_limit(false, "smtp"), 50);
        let s = settings(
            "smtp_destination_concurrency_limit = 2\nrelay_destination_concurrency_limit = 3\n\
             local_destination_concurrency_limit = 4\nsmtp_destination_recipient_limit = 5\n\
             relay_destination_recipient_limit = \"$local_destination_recipient_limit\"\n\
             local_destination_recipient_limit = 9\n",
        );
        assert_eq!(s.concurrency_limit(false, "smtp"), 2);
        assert_eq!(s.concurrency_limit(false, "relay"), 3);
        assert_eq!(s.concurrency_limit(false, "custom"), 20);
        assert_eq!(s.concurrency_limit(true, "local"), 4);
        assert_eq!(s.recipient_limit(false, "smtp"), 5);
        assert_eq!(s.recipient_limit(false, "relay"), 9);
        assert_eq!(s.recipient_limit(false, "custom"), 50);
        assert_eq!(s.recipient_limit(true, "local"), 9);
    }

    #[test]
    fn a_limit_that_refers_to_no_number_is_refused_at_load() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("main.toml"),
            "smtp_destination_concurrency_limit = \"$myhostname\"\n",
        )
        .unwrap();
        let e = mail_config::Main::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("smtp_destination_concurrency_limit"), "{e}");
    }
}
