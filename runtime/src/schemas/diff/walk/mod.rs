//! The recursive comparison of an older schema with a newer one.
//!
//! Every comparison returns its changes with paths relative to the pair being
//! compared; callers prefix them. That keeps results reusable: the result of
//! a pair is remembered, which stops the cross products of nested
//! `anyOf`/`oneOf` from growing exponentially, and a pair met again while it
//! is still being compared (a recursive `$ref`) counts as unchanged.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::Value;

mod array;
mod object;
mod scalar;

use super::change::ChangeType;
use super::change::ChangeType as T;
use super::model::{Arena, Criterion, Id, Kind};
use scalar::{enumeration, number, string};

/// A change with its path relative to the pair that produced it.
pub(super) type Rel = (ChangeType, Vec<String>);

pub(super) struct Walker<'a> {
    arena: &'a Arena,
    memo: HashMap<(Id, Id), Rc<Vec<Rel>>>,
    in_progress: HashSet<(Id, Id)>,
    /// From draft 2019-09 on `$id` is where a schema lives, not a
    /// description of it; changing it changes nothing a reader sees.
    ignore_id: bool,
}

fn compatible(diffs: &[Rel]) -> bool {
    diffs.iter().all(|(t, _)| t.is_backward_compatible())
}

/// Adds `sub` under the path `prefix`.
fn nest(out: &mut Vec<Rel>, prefix: &[&str], sub: impl IntoIterator<Item = Rel>) {
    for (kind, path) in sub {
        let mut full: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
        full.extend(path);
        out.push((kind, full));
    }
}

fn add(out: &mut Vec<Rel>, prefix: &[&str], kind: ChangeType) {
    out.push((kind, prefix.iter().map(|s| (*s).to_owned()).collect()));
}

impl<'a> Walker<'a> {
    pub(super) fn new(arena: &'a Arena) -> Self {
        Walker {
            arena,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            ignore_id: arena.modern[0] && arena.modern[1],
        }
    }

    fn compare_opt(&mut self, a: Option<Id>, b: Option<Id>) -> Vec<Rel> {
        match (a, b) {
            (None, None) => Vec::new(),
            (None, Some(_)) => vec![(T::SchemaAdded, Vec::new())],
            (Some(_), None) => vec![(T::SchemaRemoved, Vec::new())],
            (Some(a), Some(b)) => self.compare(a, b),
        }
    }

    /// Every change from `a` (older) to `b` (newer).
    pub(super) fn compare(&mut self, a: Id, b: Id) -> Vec<Rel> {
        let key = (self.arena.deref(a), self.arena.deref(b));
        if let Some(done) = self.memo.get(&key) {
            return done.as_ref().clone();
        }
        if !self.in_progress.insert(key) {
            return Vec::new();
        }
        let result = self.compare_resolved(key.0, key.1);
        self.in_progress.remove(&key);
        self.memo.insert(key, Rc::new(result.clone()));
        result
    }

    fn compare_resolved(&mut self, a: Id, b: Id) -> Vec<Rel> {
        let arena = self.arena;
        let (na, nb) = (arena.node(a), arena.node(b));
        let mut out = Vec::new();

        if matches!(na.kind, Kind::Opaque) || matches!(nb.kind, Kind::Opaque) {
            if na.source.0 != nb.source.0 {
                add(&mut out, &[], T::TypeChanged);
            }
            return out;
        }

        // A plain schema against a combinator, or the reverse: a union that
        // still holds the old schema, or an `allOf` that lost constraints.
        match (&na.kind, &nb.kind) {
            (Kind::Combined { .. }, Kind::Combined { .. }) => {}
            (
                _,
                Kind::Combined {
                    criterion,
                    subschemas,
                    ..
                },
            ) => {
                if subschemas.len() == 1 {
                    let sub = self.compare(a, subschemas[0]);
                    if compatible(&sub) {
                        return sub;
                    }
                } else if *criterion != Criterion::All {
                    for &s in subschemas {
                        let sub = self.compare(a, s);
                        if compatible(&sub) {
                            out.extend(sub);
                            add(&mut out, &[], T::SumTypeExtended);
                            return out;
                        }
                    }
                }
            }
            (
                Kind::Combined {
                    criterion,
                    subschemas,
                    ..
                },
                _,
            ) => {
                if subschemas.len() == 1 {
                    let sub = self.compare(subschemas[0], b);
                    if compatible(&sub) {
                        return sub;
                    }
                }
                if *criterion == Criterion::All {
                    for &s in subschemas {
                        let sub = self.compare(s, b);
                        if compatible(&sub) {
                            out.extend(sub);
                            add(&mut out, &[], T::ProductTypeNarrowed);
                            return out;
                        }
                    }
                }
            }
            _ => {}
        }

        if std::mem::discriminant(&na.kind) != std::mem::discriminant(&nb.kind) {
            // `false` accepted nothing, and the empty schema accepts anything.
            if !matches!(na.kind, Kind::False) && !matches!(nb.kind, Kind::Empty) {
                add(&mut out, &[], T::TypeChanged);
            }
            return out;
        }

        if !self.ignore_id && na.meta.id != nb.meta.id {
            add(&mut out, &[], T::IdChanged);
        }
        if na.meta.title != nb.meta.title {
            add(&mut out, &[], T::TitleChanged);
        }
        if na.meta.description != nb.meta.description {
            add(&mut out, &[], T::DescriptionChanged);
        }
        if na.meta.default != nb.meta.default {
            add(&mut out, &[], T::DefaultChanged);
        }

        match (&na.kind, &nb.kind) {
            (Kind::String(x), Kind::String(y)) => string(&mut out, x, y),
            (Kind::Number(x), Kind::Number(y)) => number(&mut out, x, y),
            (Kind::Enum(x), Kind::Enum(y)) => enumeration(&mut out, x, y),
            (Kind::Const(x), Kind::Const(y)) if x != y => {
                add(&mut out, &["const"], T::EnumArrayChanged);
            }
            (
                Kind::Combined {
                    criterion: ca,
                    subschemas: sa,
                    synthetic,
                },
                Kind::Combined {
                    criterion: cb,
                    subschemas: sb,
                    synthetic: synthetic_b,
                },
            ) => self.combined(&mut out, (*ca, sa, *synthetic), (*cb, sb, *synthetic_b)),
            (Kind::Not(x), Kind::Not(y)) => {
                // What `not` rejects shrinking means the schema accepts more.
                let sub = self.compare(*y, *x);
                if !sub.is_empty() {
                    let kind = if compatible(&sub) {
                        T::NotTypeNarrowed
                    } else {
                        T::NotTypeExtended
                    };
                    add(&mut out, &["not"], kind);
                }
            }
            (Kind::Object(x), Kind::Object(y)) => self.object(&mut out, x, y),
            (Kind::Array(x), Kind::Array(y)) => self.array(&mut out, x, y),
            (
                Kind::Conditional {
                    condition: ia,
                    then: ta,
                    otherwise: ea,
                },
                Kind::Conditional {
                    condition: ib,
                    then: tb,
                    otherwise: eb,
                },
            ) => {
                // Moving the condition moves data between branches, so any
                // change to it is a change of the whole construct.
                if !self.compare_opt(*ia, *ib).is_empty() {
                    add(&mut out, &["if"], T::CombinedTypeChanged);
                }
                let then = self.compare_opt(*ta, *tb);
                nest(&mut out, &["then"], then);
                let otherwise = self.compare_opt(*ea, *eb);
                nest(&mut out, &["else"], otherwise);
            }
            _ => {}
        }
        out
    }

    fn combined(
        &mut self,
        out: &mut Vec<Rel>,
        (ca, sa, synthetic): (Criterion, &[Id], bool),
        (cb, sb, synthetic_b): (Criterion, &[Id], bool),
    ) {
        let criterion_change = if ca == cb {
            None
        } else if cb == Criterion::Any
            || (cb == Criterion::One && (sa.len() == 1 || ca == Criterion::All))
            || (cb == Criterion::All && sa.len() == 1 && sb.len() == 1)
        {
            Some(T::CombinedTypeExtended)
        } else {
            Some(T::CombinedTypeChanged)
        };
        if let Some(kind) = criterion_change {
            add(out, &[], kind);
            if kind == T::CombinedTypeChanged {
                return;
            }
        }

        let sa = self.distinct(sa);
        let sb = self.distinct(sb);
        if sa.len() < sb.len() {
            let kind = if cb == Criterion::All {
                T::ProductTypeExtended
            } else {
                T::SumTypeExtended
            };
            add(out, &[], kind);
        } else if sa.len() > sb.len() {
            let kind = if ca == Criterion::All {
                T::ProductTypeNarrowed
            } else {
                T::SumTypeNarrowed
            };
            add(out, &[], kind);
        }

        // Which old subschema may become which new one, and the changes if so.
        let mut edges: Vec<Vec<(usize, Vec<Rel>)>> = Vec::with_capacity(sa.len());
        for (i, &x) in sa.iter().enumerate() {
            let index = i.to_string();
            let prefix: Vec<&str> = if synthetic {
                Vec::new()
            } else {
                vec![ca.keyword(), &index]
            };
            let mut row = Vec::new();
            for (j, &y) in sb.iter().enumerate() {
                let sub = self.compare(x, y);
                if compatible(&sub) {
                    let mut nested = Vec::new();
                    nest(&mut nested, &prefix, sub);
                    row.push((j, nested));
                }
            }
            edges.push(row);
        }
        let matching = maximum_matching(&edges, sb.len());
        let mut matched = 0;
        for (i, j) in matching.iter().enumerate() {
            if let Some(j) = j {
                matched += 1;
                if let Some((_, diffs)) = edges[i].iter().find(|(k, _)| k == j) {
                    out.extend(diffs.iter().cloned());
                }
            }
        }
        if matched < sa.len().min(sb.len()) {
            // Parts of one object (its enum, its type) pair up by what they
            // are: say what broke in them, not only that something did.
            if synthetic && synthetic_b {
                let taken: Vec<usize> = matching.iter().flatten().copied().collect();
                for (i, &x) in sa.iter().enumerate() {
                    if matching[i].is_some() {
                        continue;
                    }
                    let tag = self.arena.node(x).source.1;
                    let partner = sb
                        .iter()
                        .enumerate()
                        .find(|(j, y)| !taken.contains(j) && self.arena.node(**y).source.1 == tag);
                    if let Some((_, &y)) = partner {
                        let sub = self.compare(x, y);
                        out.extend(sub);
                    }
                }
            }
            add(out, &[], T::CombinedTypeSubschemasChanged);
        }
    }

    /// The subschemas with duplicates (same JSON) dropped, first kept.
    fn distinct(&self, ids: &[Id]) -> Vec<Id> {
        let mut seen: Vec<&(Value, &'static str)> = Vec::new();
        let mut out = Vec::new();
        for &id in ids {
            let source = &self.arena.node(id).source;
            if !seen.contains(&source) {
                seen.push(source);
                out.push(id);
            }
        }
        out
    }
}

/// Kuhn's augmenting paths: for each old subschema (in order), the new one
/// it is matched with, so that as many as possible are matched.
fn maximum_matching(edges: &[Vec<(usize, Vec<Rel>)>], right: usize) -> Vec<Option<usize>> {
    fn augment(
        i: usize,
        edges: &[Vec<(usize, Vec<Rel>)>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for (j, _) in &edges[i] {
            if seen[*j] {
                continue;
            }
            seen[*j] = true;
            if owner[*j].is_none_or(|k| augment(k, edges, seen, owner)) {
                owner[*j] = Some(i);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; right];
    for i in 0..edges.len() {
        let mut seen = vec![false; right];
        augment(i, edges, &mut seen, &mut owner);
    }
    let mut matching = vec![None; edges.len()];
    for (j, i) in owner.iter().enumerate() {
        if let Some(i) = i {
            matching[*i] = Some(j);
        }
    }
    matching
}
