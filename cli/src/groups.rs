//! `tidings groups list|create|delete|set-position|forget-idle` and
//! `tidings pending`: the consumer groups of a stream, where they are, and
//! the entries they were given and have not acknowledged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidings_runtime::{Bus, Error, Group, GroupStats, Position, StartFrom};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ops::{self, duration, parse_duration, Confirm, Connection, Failure, Format, Output};
use crate::streams;

/// The forms `--to` and `--from` take, for the messages that refuse one.
const POSITION_FORMS: &str = "`start`, `end`, an entry id (`1732442400123-0`), \
     an RFC 3339 time (`2026-12-06T10:00:00Z`) or an age before now (`90m`, `2h`, `7d`)";

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// The groups of a stream: consumers, pending entries, lag, last delivered id.
    #[command(after_help = "Example:\n  tidings groups list contextual")]
    List(ListArgs),
    /// Create a group that starts at the start, the end, an entry id or a time.
    #[command(after_help = "Example:\n  tidings groups create contextual audit --from start")]
    Create(CreateArgs),
    /// Delete a group with its consumers and pending entries (the stream
    /// keeps its entries); exits 1 if there is no such group.
    #[command(after_help = "Example:\n  tidings groups delete contextual audit")]
    Delete(DeleteArgs),
    /// Move a group: read again from the start, an entry id or a time, or
    /// skip to the end.
    #[command(
        after_help = "Example:\n  tidings groups set-position contextual file-processor --to 2h"
    )]
    SetPosition(SetPositionArgs),
    /// Remove the consumers that have nothing pending and have not read
    /// for a while (workers that stopped without removing themselves).
    #[command(
        after_help = "Example:\n  tidings groups forget-idle contextual file-processor --idle 1h"
    )]
    ForgetIdle(ForgetIdleArgs),
}

/// A stream and one of its groups.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    /// The group's name, as in `#[handler(group = "…")]`.
    group: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The stream's name, as in `#[event(stream = "…")]`.
    stream: String,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// Where the group starts: `start` (every entry of the stream), `end`
    /// (only what is published from now on), an entry id (the entries
    /// after it), an RFC 3339 time or an age such as `2h` (the entries
    /// published at or after it). A group that exists is left where it is.
    #[arg(long, value_name = "POSITION", default_value = "end", value_parser = parse_position)]
    from: Spot,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    confirm: Confirm,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct SetPositionArgs {
    #[command(flatten)]
    target: Target,
    /// Where the group goes: `start` (read the whole stream again), `end`
    /// (skip what it has not read), an entry id (the entries after it), an
    /// RFC 3339 time such as `2026-12-06T10:00:00Z` or an age such as
    /// `90m`, `2h`, `7d` (the entries published at or after it).
    #[arg(long, value_name = "POSITION", value_parser = parse_position)]
    to: Spot,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct ForgetIdleArgs {
    #[command(flatten)]
    target: Target,
    /// Least time without a read, such as `10m`, `2h`, `1d`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle: Duration,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct PendingArgs {
    #[command(flatten)]
    target: Target,
    /// Most entries to show, the oldest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    connection: Connection,
}

/// A position as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spot {
    Start,
    End,
    After(String),
    Time(SystemTime),
}

impl Spot {
    fn position(&self) -> Position {
        match self {
            Spot::Start => Position::Start,
            Spot::End => Position::End,
            Spot::After(id) => Position::After(id.clone()),
            Spot::Time(t) => Position::Time(*t),
        }
    }

    /// Where `XGROUP CREATE` starts the group. A time becomes the last id
    /// that can come before it, as `Position::Time` does for `XGROUP SETID`,
    /// so that the group is created there in one command: creating it at
    /// the end and moving it after would let a worker read in between.
    fn start_from(&self) -> StartFrom {
        match self {
            Spot::Start => StartFrom::Beginning,
            Spot::End => StartFrom::New,
            Spot::After(id) => StartFrom::After(id.clone()),
            Spot::Time(t) => match millis(*t).checked_sub(1) {
                Some(before) => StartFrom::After(format!("{before}-{}", u64::MAX)),
                None => StartFrom::Beginning,
            },
        }
    }

    /// `the start`, `the end`, `entry 1732442400123-0`, `2026-12-06T10:00:00Z`.
    fn describe(&self) -> String {
        match self {
            Spot::Start => "the start".to_owned(),
            Spot::End => "the end".to_owned(),
            Spot::After(id) => format!("entry {id}"),
            Spot::Time(t) => rfc3339(*t),
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// To the millisecond, the precision of entry ids.
fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(UNIX_EPOCH + Duration::from_millis(millis(t)))
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{} ms after 1970", millis(t)))
}

fn parse_position(text: &str) -> Result<Spot, String> {
    position_at(text, SystemTime::now())
}

/// `start`, `end`, `<ms>-<seq>`, an RFC 3339 time or an age, read as of `now`.
fn position_at(text: &str, now: SystemTime) -> Result<Spot, String> {
    match text {
        "start" => return Ok(Spot::Start),
        "end" => return Ok(Spot::End),
        _ => {}
    }
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
    };
    if let Some((ms, seq)) = text.split_once('-') {
        if number(ms) && number(seq) {
            return Ok(Spot::After(text.to_owned()));
        }
    }
    let time = if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        if t.unix_timestamp() < 0 {
            return Err(format!("`{text}` is before 1970, where no entry id can be"));
        }
        SystemTime::from(t)
    } else if let Some(age) = duration(text) {
        now.checked_sub(age)
            .filter(|t| *t >= UNIX_EPOCH)
            .ok_or_else(|| format!("`{text}` ago is before 1970, where no entry id can be"))?
    } else {
        return Err(format!(
            "`{text}` is not a position; expected {POSITION_FORMS}"
        ));
    };
    // Entry ids carry the time Redis added them: a time to come would put
    // the group past entries not published yet, which is `end` at best and
    // a typo at worst.
    if time > now {
        return Err(format!(
            "`{text}` is in the future; to skip everything published so far, use `end`"
        ));
    }
    Ok(Spot::Time(time))
}

pub(crate) fn run(command: GroupsCommand) -> Result<(), Failure> {
    match command {
        GroupsCommand::List(args) => ops::block_on(list(args)),
        GroupsCommand::Create(args) => ops::block_on(create(args)),
        GroupsCommand::Delete(args) => ops::block_on(delete(args)),
        GroupsCommand::SetPosition(args) => ops::block_on(set_position(args)),
        GroupsCommand::ForgetIdle(args) => ops::block_on(forget_idle(args)),
    }
}

pub(crate) fn run_pending(args: PendingArgs) -> Result<(), Failure> {
    ops::block_on(pending(args))
}

/// A failed call: a group that is not there is said in words rather than
/// as Redis's `NOGROUP`; the rest as [`Connection::failed`] says it.
fn failed(connection: &Connection, group: &Group, what: &str, e: Error) -> Failure {
    match e {
        Error::Transport(t) if t.is_no_group() => no_group(group),
        other => connection.failed(what, other),
    }
}

fn no_group(group: &Group) -> Failure {
    Failure::Operational(format!(
        "no group `{}` on {} (see `tidings groups list`, or create it with `tidings groups create`)",
        group.name(),
        group.key()
    ))
}

/// The group, its names checked before connecting: a stream or group name
/// that would break a key is a mistake on the command line, whether or not
/// Redis is up.
async fn open(connection: &Connection, target: &Target) -> Result<(Bus, Group), Failure> {
    let usage = |e: Error| Failure::Usage(e.to_string());
    connection
        .offline()?
        .group(&target.stream, &target.group)
        .map_err(usage)?;
    let bus = connection.bus().await?;
    let group = bus.group(&target.stream, &target.group).map_err(usage)?;
    Ok((bus, group))
}

/// The group as `XINFO` sees it, if it exists.
async fn stats_of(
    connection: &Connection,
    bus: &Bus,
    target: &Target,
) -> Result<Option<GroupStats>, Failure> {
    let stats = bus
        .stream_stats(&target.stream)
        .await
        .map_err(|e| connection.failed("XINFO", e))?;
    Ok(stats.group(&target.group).cloned())
}

/// Pretty-printed, as `streams stats` prints its JSON.
fn print_json(value: &Value) {
    println!("{value:#}");
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    args.connection
        .offline()?
        .stream_key(&args.stream)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let bus = args.connection.bus().await?;
    let stats = bus
        .stream_stats(&args.stream)
        .await
        .map_err(|e| args.connection.failed("XINFO", e))?;
    match args.output.format() {
        Format::Json => print_json(&json!(stats.groups)),
        Format::Text if stats.groups.is_empty() => println!(
            "no consumer group on {}{}",
            stats.key,
            if stats.exists {
                ""
            } else {
                " (the stream does not exist)"
            }
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = stats
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.name.clone(),
                        g.consumers.len().to_string(),
                        g.pending.to_string(),
                        streams::count(g.lag),
                        g.last_delivered_id.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                ops::table(
                    &["GROUP", "CONSUMERS", "PENDING", "LAG", "LAST DELIVERED"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let (bus, group) = open(&args.connection, &args.target).await?;
    let before = stats_of(&args.connection, &bus, &args.target).await?;
    if before.is_none() {
        group
            .create(args.from.start_from())
            .await
            .map_err(|e| failed(&args.connection, &group, "XGROUP CREATE", e))?;
    }
    let created = before.is_none();
    // Created at `$`, the group's id is the stream's last: show which.
    let now = match before {
        Some(g) => g,
        None => stats_of(&args.connection, &bus, &args.target)
            .await?
            .ok_or_else(|| no_group(&group))?,
    };
    match args.output.format() {
        Format::Json => print_json(&json!({
            "key": group.key(),
            "group": group.name(),
            "created": created,
            "last_delivered_id": now.last_delivered_id,
            "lag": now.lag,
        })),
        Format::Text if created => println!(
            "created group `{}` on {} at {}: last delivered {}, lag {}",
            group.name(),
            group.key(),
            args.from.describe(),
            now.last_delivered_id,
            streams::count(now.lag)
        ),
        // `XGROUP CREATE` on a group that exists changes nothing: a worker
        // restarting must not move its group, and neither does this.
        Format::Text => println!(
            "group `{}` already exists on {}: left at {} (move it with `tidings groups set-position`)",
            group.name(),
            group.key(),
            now.last_delivered_id
        ),
    }
    Ok(())
}

async fn delete(args: DeleteArgs) -> Result<(), Failure> {
    let (bus, group) = open(&args.connection, &args.target).await?;
    args.confirm.ask(&format!(
        "Delete group `{}` of {}, with its consumers and pending entries?",
        group.name(),
        group.key()
    ))?;
    let before = stats_of(&args.connection, &bus, &args.target).await?;
    let existed = group
        .delete()
        .await
        .map_err(|e| failed(&args.connection, &group, "XGROUP DESTROY", e))?;
    // A missing group is most likely a misspelt one: exit 1 so that a
    // script that meant to delete something hears that nothing was.
    if !existed {
        return Err(Failure::Operational(format!(
            "no group `{}` on {}: nothing deleted",
            group.name(),
            group.key()
        )));
    }
    let (consumers, pending) = before.map_or((0, 0), |g| (g.consumers.len(), g.pending));
    match args.output.format() {
        Format::Json => print_json(&json!({
            "key": group.key(),
            "group": group.name(),
            "deleted": true,
            "consumers": consumers,
            "pending": pending,
        })),
        Format::Text => println!(
            "deleted group `{}` from {} with its {consumers} consumers and {pending} pending entries",
            group.name(),
            group.key()
        ),
    }
    Ok(())
}

async fn set_position(args: SetPositionArgs) -> Result<(), Failure> {
    let (bus, group) = open(&args.connection, &args.target).await?;
    // `XGROUP SETID` on a missing group fails with a message about the key
    // or the group depending on which is missing: ask first, and say one thing.
    let before = stats_of(&args.connection, &bus, &args.target)
        .await?
        .ok_or_else(|| no_group(&group))?;
    group
        .set_position(args.to.position())
        .await
        .map_err(|e| failed(&args.connection, &group, "XGROUP SETID", e))?;
    let after = stats_of(&args.connection, &bus, &args.target)
        .await?
        .ok_or_else(|| no_group(&group))?;
    match args.output.format() {
        Format::Json => print_json(&json!({
            "key": group.key(),
            "group": group.name(),
            "from": before.last_delivered_id,
            "to": after.last_delivered_id,
            "lag": after.lag,
            "pending": after.pending,
        })),
        Format::Text => {
            println!(
                "moved group `{}` on {} to {}: last delivered {} (was {}), lag {}",
                group.name(),
                group.key(),
                args.to.describe(),
                after.last_delivered_id,
                before.last_delivered_id,
                streams::count(after.lag)
            );
            if after.pending > 0 {
                println!(
                    "{} entries delivered before stay pending (see `tidings pending`)",
                    after.pending
                );
            }
        }
    }
    Ok(())
}

async fn forget_idle(args: ForgetIdleArgs) -> Result<(), Failure> {
    let (bus, group) = open(&args.connection, &args.target).await?;
    // The runtime finds no consumers in a group that is not there; say that
    // the group is missing rather than that nobody was idle.
    stats_of(&args.connection, &bus, &args.target)
        .await?
        .ok_or_else(|| no_group(&group))?;
    let removed = group
        .forget_idle_consumers(args.idle)
        .await
        .map_err(|e| failed(&args.connection, &group, "XGROUP DELCONSUMER", e))?;
    match args.output.format() {
        Format::Json => print_json(&json!({
            "key": group.key(),
            "group": group.name(),
            "removed": removed,
        })),
        Format::Text if removed.is_empty() => println!(
            "no consumer of group `{}` on {} has been idle for {} with nothing pending",
            group.name(),
            group.key(),
            streams::idle(u64::try_from(args.idle.as_millis()).unwrap_or(u64::MAX))
        ),
        Format::Text => println!(
            "removed {} consumers from group `{}` on {}: {}",
            removed.len(),
            group.name(),
            group.key(),
            removed.join(", ")
        ),
    }
    Ok(())
}

async fn pending(args: PendingArgs) -> Result<(), Failure> {
    let (_bus, group) = open(&args.connection, &args.target).await?;
    let count = usize::try_from(args.count).unwrap_or(usize::MAX);
    let entries = group
        .pending(count)
        .await
        .map_err(|e| failed(&args.connection, &group, "XPENDING", e))?;
    match args.output.format() {
        Format::Json => print_json(&json!(entries)),
        Format::Text if entries.is_empty() => println!(
            "no pending entries in group `{}` on {}",
            group.name(),
            group.key()
        ),
        Format::Text => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        p.consumer.clone(),
                        streams::idle(p.idle_ms),
                        p.deliveries.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                ops::table(&["ENTRY", "CONSUMER", "IDLE", "DELIVERIES"], &rows)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Result<Spot, String> {
        // 2026-12-06T10:00:00Z
        position_at(text, UNIX_EPOCH + Duration::from_secs(1_796_551_200))
    }

    #[test]
    fn positions_are_words_ids_times_or_ages() {
        assert_eq!(at("start"), Ok(Spot::Start));
        assert_eq!(at("end"), Ok(Spot::End));
        assert_eq!(
            at("1732442400123-0"),
            Ok(Spot::After("1732442400123-0".into()))
        );
        assert_eq!(
            at("2026-12-06T09:00:00Z"),
            Ok(Spot::Time(UNIX_EPOCH + Duration::from_secs(1_796_547_600)))
        );
        assert_eq!(at("1h"), at("2026-12-06T09:00:00Z"));
        assert_eq!(at("60m"), at("1h"));
        assert_eq!(
            at("7d"),
            Ok(Spot::Time(
                UNIX_EPOCH + Duration::from_secs(1_796_551_200 - 7 * 86_400)
            ))
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_accepted_forms() {
        for bad in [
            "yesterday",
            "2h30m",
            "1-",
            "-1",
            "2026-12-06",
            "",
            "START",
            "5",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains(POSITION_FORMS), "{bad}: {e}");
        }
        assert!(at("2026-12-07T00:00:00Z").unwrap_err().contains("future"));
        assert!(at("1960-01-01T00:00:00Z").unwrap_err().contains("1970"));
        assert!(at("99999d").unwrap_err().contains("1970"));
    }

    #[test]
    fn a_time_creates_the_group_just_before_its_first_millisecond() {
        let t = Spot::Time(UNIX_EPOCH + Duration::from_millis(1_732_442_400_123));
        assert_eq!(
            t.start_from(),
            StartFrom::After(format!("1732442400122-{}", u64::MAX))
        );
        assert_eq!(Spot::Time(UNIX_EPOCH).start_from(), StartFrom::Beginning);
    }

    #[test]
    fn durations_are_one_number_and_one_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["10", "m", "1h30m", "1.5h", "10M", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
