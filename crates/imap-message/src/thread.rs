//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, returning the
//! imap-types thread structure.
//!
//! Input is the same [`SortItem`] list SORT takes (the messages a SEARCH
//! selected). REFERENCES follows the RFC's six steps literally: link by
//! References (or In-Reply-To), gather the roots, prune empty
//! containers, merge roots by base subject, sort siblings by sent date
//! (falling back to the internal date, ties by sequence number).
//!
//! Every walk over the container tree is iterative, because References
//! chains (a thousand replies to replies) decide its depth, and the loop
//! check of step 1 is bounded by [`MAX_LOOP_WALK`]. Only the
//! conversion to imap-types' nested [`Thread`] value recurses, and that
//! is cut at [`MAX_THREAD_DEPTH`] branching levels: deeper replies are
//! listed, in date order, as one flat chain under the last level, so the
//! answer keeps every message.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;

use imap_types::core::{Vec1, Vec2};
use imap_types::extensions::thread::{Thread, ThreadingAlgorithm};

pub use crate::sort::MAX_REFERENCES;
use crate::sort::SortItem;

/// Deepest nesting of branches in a THREAD answer.
pub const MAX_THREAD_DEPTH: usize = 100;

/// Most ancestors looked at when checking that a References link makes
/// no loop.
pub const MAX_LOOP_WALK: usize = 1_000;

#[derive(Debug, Clone, Default)]
struct Node {
    /// Index into the items, or `None` for an empty (dummy) container.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

impl Forest {
    fn new_node(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node { msg, parent: None, children: Vec::new() });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of its ancestors. A container without
    /// children can only be its own ancestor, which answers the common
    /// case at once; otherwise the walk up is cut after
    /// [`MAX_LOOP_WALK`] steps and counts as a loop (the link is not
    /// made), so hostile References cannot make THREAD quadratic.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        if a == b {
            return true;
        }
        if self.nodes[a].children.is_empty() {
            return false;
        }
        let mut cur = self.nodes[b].parent;
        for _ in 0..MAX_LOOP_WALK {
            match cur {
                Some(c) if c == a => return true,
                Some(c) => cur = self.nodes[c].parent,
                None => return false,
            }
        }
        true
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }
}

/// THREAD with `algorithm`; `None` for an algorithm this crate does not
/// know (answer BAD: it was not announced).
pub fn thread(items: &[SortItem<'_>], algorithm: &ThreadingAlgorithm<'_>) -> Option<Vec<Thread>> {
    match algorithm {
        ThreadingAlgorithm::OrderedSubject => Some(ordered_subject(items)),
        ThreadingAlgorithm::References => Some(references(items)),
        ThreadingAlgorithm::Other(_) => None,
    }
}

/// The sort key RFC 5256 uses for siblings: sent date, then sequence.
fn date_key(item: &SortItem<'_>) -> (i64, NonZeroU32) {
    (item.date(), item.seq)
}

/// THREAD=ORDEREDSUBJECT: messages grouped by base subject, each group
/// a root (its earliest message) with the others as its children in date
/// order, the groups ordered by the date of their root.
pub fn ordered_subject(items: &[SortItem<'_>]) -> Vec<Thread> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[a]
            .facts
            .base_subject
            .cmp(&items[b].facts.base_subject)
            .then(date_key(&items[a]).cmp(&date_key(&items[b])))
    });
    let mut forest = Forest { nodes: Vec::new(), roots: Vec::new() };
    let mut current: Option<(usize, &str)> = None;
    for i in order {
        let subject = items[i].facts.base_subject.as_str();
        let n = forest.new_node(Some(i));
        match current {
            Some((root, s)) if s == subject => forest.link(root, n),
            _ => {
                forest.roots.push(n);
                current = Some((n, subject));
            }
        }
    }
    forest.roots.sort_by_key(|&r| forest.nodes[r].msg.map(|m| date_key(&items[m])));
    to_threads(&forest, items)
}

/// THREAD=REFERENCES (RFC 5256 §3).
pub fn references(items: &[SortItem<'_>]) -> Vec<Thread> {
    let mut forest = Forest { nodes: Vec::new(), roots: Vec::new() };
    let mut ids: HashMap<&str, usize> = HashMap::new();
    // Step 1.
    for (i, item) in items.iter().enumerate() {
        // 1.A: a missing or duplicate Message-ID gets a container of its
        // own that nothing can refer to.
        let me = match item.facts.message_id.as_deref() {
            Some(id) => match ids.get(id) {
                Some(&c) if forest.nodes[c].msg.is_none() => {
                    forest.nodes[c].msg = Some(i);
                    c
                }
                Some(_) => forest.new_node(Some(i)),
                None => {
                    let c = forest.new_node(Some(i));
                    ids.insert(id, c);
                    c
                }
            },
            None => forest.new_node(Some(i)),
        };
        // 1.B: link the References chain, never changing a parent that
        // is already set and never making a loop.
        let mut prev: Option<usize> = None;
        for r in &item.facts.references {
            let c = match ids.get(r.as_str()) {
                Some(&c) => c,
                None => {
                    let c = forest.new_node(None);
                    ids.insert(r.as_str(), c);
                    c
                }
            };
            if let Some(p) = prev
                && forest.nodes[c].parent.is_none()
                && !forest.is_ancestor(c, p)
            {
                forest.link(p, c);
            }
            prev = Some(c);
        }
        // 1.C: the last reference is the parent, replacing any earlier
        // (truncated) link, unless that makes a loop.
        if let Some(p) = prev
            && !forest.is_ancestor(me, p)
        {
            forest.link(p, me);
        }
    }
    // Steps 2 and 3.
    let mut roots: Vec<usize> =
        (0..forest.nodes.len()).filter(|&n| forest.nodes[n].parent.is_none()).collect();
    drop(ids);
    // Step 4.
    roots = prune(&mut forest, roots, true);
    let mut work: Vec<usize> = roots.clone();
    while let Some(n) = work.pop() {
        let children = std::mem::take(&mut forest.nodes[n].children);
        let kept = prune(&mut forest, children, false);
        for &c in &kept {
            forest.nodes[c].parent = Some(n);
        }
        work.extend(kept.iter().copied());
        forest.nodes[n].children = kept;
    }
    // Step 5.
    forest.roots = group_by_subject(&mut forest, roots, items);
    // Step 6.
    sort_siblings(&mut forest, items);
    to_threads(&forest, items)
}

/// Step 4 on one sibling list: empty containers without children go,
/// those with children give way to them (at the root level only when
/// there is a single child).
fn prune(forest: &mut Forest, list: Vec<usize>, at_root: bool) -> Vec<usize> {
    let mut queue: VecDeque<usize> = list.into();
    let mut out = Vec::new();
    while let Some(c) = queue.pop_front() {
        let node = &forest.nodes[c];
        if node.msg.is_some() {
            out.push(c);
        } else if node.children.is_empty() {
            continue;
        } else if !at_root || node.children.len() == 1 {
            let children = std::mem::take(&mut forest.nodes[c].children);
            for &ch in children.iter().rev() {
                forest.nodes[ch].parent = None;
                queue.push_front(ch);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The message that speaks for a root: itself, or a dummy's first child.
fn root_message(forest: &Forest, n: usize) -> Option<usize> {
    forest.nodes[n]
        .msg
        .or_else(|| forest.nodes[n].children.first().and_then(|&c| forest.nodes[c].msg))
}

/// Step 5: roots with the same base subject are merged.
fn group_by_subject(forest: &mut Forest, roots: Vec<usize>, items: &[SortItem<'_>]) -> Vec<usize> {
    let subject_of = |forest: &Forest, n: usize| {
        root_message(forest, n).map(|m| items[m].facts.base_subject.clone())
    };
    let is_reply =
        |forest: &Forest, n: usize| forest.nodes[n].msg.is_some_and(|m| items[m].facts.is_reply);
    let is_dummy = |forest: &Forest, n: usize| forest.nodes[n].msg.is_none();
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some(s) = subject_of(forest, r).filter(|s| !s.is_empty()) else { continue };
        match table.get(&s) {
            None => {
                table.insert(s, r);
            }
            Some(&old) => {
                let replace = (is_dummy(forest, r) && !is_dummy(forest, old))
                    || (!is_dummy(forest, old)
                        && is_reply(forest, old)
                        && !is_dummy(forest, r)
                        && !is_reply(forest, r));
                if replace {
                    table.insert(s, r);
                }
            }
        }
    }
    let mut out: Vec<usize> = Vec::with_capacity(roots.len());
    let mut removed = vec![false; forest.nodes.len()];
    let mut replaced: HashMap<usize, usize> = HashMap::new();
    for &r in &roots {
        let Some(s) = subject_of(forest, r).filter(|s| !s.is_empty()) else {
            out.push(r);
            continue;
        };
        let Some(&t) = table.get(&s) else {
            out.push(r);
            continue;
        };
        if t == r {
            out.push(r);
            continue;
        }
        match (is_dummy(forest, t), is_dummy(forest, r)) {
            (true, true) => {
                let children = std::mem::take(&mut forest.nodes[r].children);
                for c in children {
                    forest.nodes[c].parent = None;
                    forest.link(t, c);
                }
                removed[r] = true;
            }
            (true, false) => {
                forest.link(t, r);
                removed[r] = true;
            }
            (false, true) => {
                forest.link(r, t);
                removed[t] = true;
                table.insert(s, r);
                out.push(r);
            }
            (false, false) if is_reply(forest, r) && !is_reply(forest, t) => {
                forest.link(t, r);
                removed[r] = true;
            }
            (false, false) if is_reply(forest, t) && !is_reply(forest, r) => {
                forest.link(r, t);
                removed[t] = true;
                table.insert(s, r);
                out.push(r);
            }
            (false, false) => {
                // Neither is a reply: a new empty container holds both,
                // standing where the first of them stood.
                let d = forest.new_node(None);
                removed.push(false);
                forest.link(d, t);
                forest.link(d, r);
                removed[r] = true;
                replaced.insert(t, d);
                table.insert(s, d);
            }
        }
    }
    out.into_iter()
        .map(|n| {
            // Follow replacements (a root that became a child of a new
            // empty container).
            let mut n = n;
            while let Some(&d) = replaced.get(&n) {
                n = d;
            }
            n
        })
        .filter(|&n| !removed[n] && forest.nodes[n].parent.is_none())
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        })
}

/// Step 6: every sibling list by date; an empty container sorts by its
/// first child (after its children are sorted).
fn sort_siblings(forest: &mut Forest, items: &[SortItem<'_>]) {
    // Post-order, iteratively: children are sorted before their parent
    // needs their keys.
    let mut post = Vec::with_capacity(forest.nodes.len());
    let mut stack: Vec<usize> = forest.roots.clone();
    while let Some(n) = stack.pop() {
        post.push(n);
        stack.extend(forest.nodes[n].children.iter().copied());
    }
    let mut key: Vec<Option<(i64, NonZeroU32)>> = vec![None; forest.nodes.len()];
    for &n in post.iter().rev() {
        let mut children = std::mem::take(&mut forest.nodes[n].children);
        children.sort_by_key(|&c| key[c]);
        key[n] = match forest.nodes[n].msg {
            Some(m) => Some(date_key(&items[m])),
            None => children.first().and_then(|&c| key[c]),
        };
        forest.nodes[n].children = children;
    }
    let mut roots = std::mem::take(&mut forest.roots);
    roots.sort_by_key(|&r| key[r]);
    forest.roots = roots;
}

/// Every message of the subtree under `n` in pre-order (date order
/// after step 6), without recursion.
fn flatten(forest: &Forest, n: usize, items: &[SortItem<'_>], out: &mut Vec<NonZeroU32>) {
    let mut stack = vec![n];
    while let Some(c) = stack.pop() {
        if let Some(m) = forest.nodes[c].msg {
            out.push(items[m].id);
        }
        stack.extend(forest.nodes[c].children.iter().rev().copied());
    }
}

fn node_thread(forest: &Forest, n: usize, items: &[SortItem<'_>], depth: usize) -> Option<Thread> {
    let mut prefix: Vec<NonZeroU32> = Vec::new();
    let mut cur = n;
    loop {
        let node = &forest.nodes[cur];
        if depth >= MAX_THREAD_DEPTH && node.children.len() > 1 {
            flatten(forest, cur, items, &mut prefix);
            return Vec1::try_from(prefix)
                .ok()
                .map(|prefix| Thread::Members { prefix, answers: None });
        }
        if let Some(m) = node.msg {
            prefix.push(items[m].id);
        }
        match node.children.as_slice() {
            [] => {
                return Vec1::try_from(prefix)
                    .ok()
                    .map(|prefix| Thread::Members { prefix, answers: None });
            }
            [only] => cur = *only,
            many => {
                let mut answers: Vec<Thread> =
                    many.iter().filter_map(|&c| node_thread(forest, c, items, depth + 1)).collect();
                if answers.len() < 2 {
                    // Only one branch held messages: it continues the chain.
                    return match (answers.pop(), Vec1::try_from(prefix)) {
                        (None, prefix) => {
                            prefix.ok().map(|prefix| Thread::Members { prefix, answers: None })
                        }
                        (Some(t), Err(_)) => Some(t),
                        (Some(Thread::Members { prefix: p, answers }), Ok(prefix)) => {
                            let mut prefix = prefix.into_inner();
                            prefix.extend(p.into_inner());
                            Vec1::try_from(prefix)
                                .ok()
                                .map(|prefix| Thread::Members { prefix, answers })
                        }
                        (Some(Thread::Nested { answers }), Ok(prefix)) => {
                            Some(Thread::Members { prefix, answers: Some(answers) })
                        }
                    };
                }
                let answers = Vec2::try_from(answers).ok()?;
                return Some(match Vec1::try_from(prefix) {
                    Ok(prefix) => Thread::Members { prefix, answers: Some(answers) },
                    Err(_) => Thread::Nested { answers },
                });
            }
        }
    }
}

fn to_threads(forest: &Forest, items: &[SortItem<'_>]) -> Vec<Thread> {
    forest.roots.iter().filter_map(|&r| node_thread(forest, r, items, 0)).collect()
}
