//! Figures, their targets, and how they are printed: one table for people,
//! one JSON line per figure for scripts.

use std::fmt::Write as _;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput: more is better.
    Higher,
    /// Time, latency, memory: less is better.
    Lower,
}

/// A bound a figure must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `tidings / baseline` at least this.
    RatioAtLeast(f64),
    /// `tidings / baseline` at most this.
    RatioAtMost(f64),
    /// The tidings figure at least this, in the figure's unit.
    AtLeast(f64),
    /// The tidings figure at most this, in the figure's unit.
    AtMost(f64),
}

impl Target {
    fn holds(self, tidings: f64, ratio: f64) -> bool {
        match self {
            Target::RatioAtLeast(r) => ratio >= r,
            Target::RatioAtMost(r) => ratio <= r,
            Target::AtLeast(v) => tidings >= v,
            Target::AtMost(v) => tidings <= v,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(r) => format!(">= {r}x"),
            Target::RatioAtMost(r) => format!("<= {r}x"),
            Target::AtLeast(v) => format!(">= {} {unit}", human(v)),
            Target::AtMost(v) => format!("<= {} {unit}", human(v)),
        }
    }
}

/// One measured figure: tidings beside its baseline from the same run.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable name, such as `publish_awaited`.
    pub name: String,
    /// The tidings figure (median of the runs).
    pub tidings: f64,
    /// The baseline figure (median of the runs).
    pub baseline: f64,
    /// Unit of both.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// Bounds the figure must meet.
    pub targets: Vec<Target>,
    /// Every tidings run, to show the noise.
    pub tidings_runs: Vec<f64>,
    /// Every baseline run.
    pub baseline_runs: Vec<f64>,
    /// What a reader of the figure should know about this run, such as a
    /// floor that Redis's own client did not reach either.
    pub notes: Vec<String>,
}

impl Figure {
    /// A figure from repeated runs of both sides; the median of each is reported.
    pub fn from_runs(
        name: impl Into<String>,
        unit: &'static str,
        better: Better,
        tidings_runs: Vec<f64>,
        baseline_runs: Vec<f64>,
    ) -> Self {
        Figure {
            name: name.into(),
            tidings: median(&tidings_runs),
            baseline: median(&baseline_runs),
            unit,
            better,
            targets: Vec::new(),
            tidings_runs,
            baseline_runs,
            notes: Vec::new(),
        }
    }

    /// A figure from repeated runs of a CPU-bound loop, where the machine's
    /// noise only ever makes a run slower: the best run of each side is
    /// reported.
    pub fn best_of_runs(
        name: impl Into<String>,
        unit: &'static str,
        better: Better,
        tidings_runs: Vec<f64>,
        baseline_runs: Vec<f64>,
    ) -> Self {
        let best = |runs: &[f64]| {
            let finite = runs.iter().copied().filter(|v| v.is_finite());
            match better {
                Better::Higher => finite.fold(f64::NAN, f64::max),
                Better::Lower => finite.fold(f64::NAN, f64::min),
            }
        };
        Figure {
            tidings: best(&tidings_runs),
            baseline: best(&baseline_runs),
            ..Figure::from_runs(name, unit, better, tidings_runs, baseline_runs)
        }
    }

    /// Adds a target.
    #[must_use]
    pub fn target(mut self, t: Target) -> Self {
        self.targets.push(t);
        self
    }

    /// The highest floor among the targets (`Target::AtLeast`), if any.
    pub fn floor(&self) -> Option<f64> {
        self.targets
            .iter()
            .filter_map(|t| match t {
                Target::AtLeast(v) => Some(*v),
                _ => None,
            })
            .reduce(f64::max)
    }

    /// `tidings / baseline`.
    pub fn ratio(&self) -> f64 {
        if self.baseline == 0.0 {
            f64::NAN
        } else {
            self.tidings / self.baseline
        }
    }

    /// `PASS`, `MISS`, or empty when the figure has no target.
    pub fn status(&self) -> &'static str {
        if self.targets.is_empty() {
            ""
        } else if self
            .targets
            .iter()
            .all(|t| t.holds(self.tidings, self.ratio()))
        {
            "PASS"
        } else {
            "MISS"
        }
    }

    /// The JSON line of the figure.
    pub fn json(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(|t| t.describe(self.unit)).collect();
        serde_json::json!({
            "figure": self.name,
            "tidings": round(self.tidings),
            "baseline": round(self.baseline),
            "unit": self.unit,
            "ratio": round(self.ratio()),
            "target": targets.join(" and "),
            "status": self.status(),
            "tidings_runs": self.tidings_runs.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "baseline_runs": self.baseline_runs.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "notes": self.notes,
        })
        .to_string()
    }
}

fn round(v: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 1000.0).round() / 1000.0
    }
}

/// A number for people: thousands separated, three significant digits below 100.
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    if v.abs() >= 100.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The table of every figure.
pub fn table(figures: &[Figure]) -> String {
    let header = [
        "figure", "tidings", "baseline", "unit", "ratio", "target", "status", "spread",
    ];
    let rows: Vec<[String; 8]> = figures
        .iter()
        .map(|f| {
            let targets: Vec<String> = f.targets.iter().map(|t| t.describe(f.unit)).collect();
            [
                f.name.clone(),
                human(f.tidings),
                human(f.baseline),
                f.unit.to_owned(),
                format!("{:.2}x", f.ratio()),
                targets.join(" and "),
                f.status().to_owned(),
                format!(
                    "tidings {} / baseline {}",
                    spread(&f.tidings_runs),
                    spread(&f.baseline_runs)
                ),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            // Names and words left, numbers right.
            if matches!(i, 1 | 2 | 4) {
                let _ = write!(out, "{}{c}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{c}{}  ", " ".repeat(pad));
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for r in &rows {
        line(&mut out, r);
    }
    out
}

/// Notes each figure whose floor (`Target::AtLeast`) lies above every
/// measurement of Redis's own client on the same work in the same run.
///
/// `ceilings` pairs a figure's name with the names of the figures whose
/// baseline is `redis-benchmark` doing that work (`redis_benchmark_*`).
/// When even the best of those stays below the floor, the machine could not
/// reach the floor with any client at the time of the run: the figure keeps
/// its status, and the note says so, so that a `MISS` of the machine is told
/// apart from a `MISS` of tidings.
pub fn note_floors_above_the_ceiling(figures: &mut [Figure], ceilings: &[(&str, &[&str])]) {
    for (name, of) in ceilings {
        let best = of
            .iter()
            .filter_map(|c| figures.iter().find(|f| f.name == *c))
            .filter(|c| c.baseline.is_finite())
            .map(|c| (c.baseline, c.name.clone()))
            .reduce(|a, b| if b.0 > a.0 { b } else { a });
        let Some((ceiling, ceiling_name)) = best else {
            continue;
        };
        let Some(f) = figures.iter_mut().find(|f| f.name == *name) else {
            continue;
        };
        let Some(floor) = f.floor() else {
            continue;
        };
        if ceiling < floor {
            f.notes.push(format!(
                "the floor of {} {unit} is above the best of Redis's own client \
                 doing the same work or less in this run ({} {unit}, {ceiling_name}): \
                 on this machine at this time the floor cannot tell about tidings, \
                 the ratio targets can",
                human(floor),
                human(ceiling),
                unit = f.unit,
            ));
        }
    }
}

/// Notes each figure that misses an absolute bound (`Target::AtLeast`,
/// `Target::AtMost`) which its own baseline, measured in the same run,
/// misses too: a bound that plain redis-rs misses on the same machine at
/// the same time speaks of the machine as much as of tidings. A figure that
/// already carries a note (such as the stronger one of
/// [`note_floors_above_the_ceiling`]) gets no second one.
pub fn note_bounds_the_baseline_misses(figures: &mut [Figure]) {
    for f in figures.iter_mut().filter(|f| f.notes.is_empty()) {
        let missed: Vec<String> = f
            .targets
            .iter()
            .filter(|t| matches!(t, Target::AtLeast(_) | Target::AtMost(_)))
            .filter(|t| !t.holds(f.tidings, f.ratio()) && !t.holds(f.baseline, 1.0))
            .map(|t| t.describe(f.unit))
            .collect();
        for bound in missed {
            f.notes.push(format!(
                "the baseline misses {bound} too in this run ({} {})",
                human(f.baseline),
                f.unit
            ));
        }
    }
}

/// Notes each timed figure that misses its target while the figure counting
/// the instructions of the same work passes: instruction counts do not move
/// with the machine's load or with code placement, times do.
///
/// `pairs` holds `(timed figure, instruction figure)` names.
pub fn note_times_against_instructions(figures: &mut [Figure], pairs: &[(&str, &str)]) {
    for (timed, counted) in pairs {
        let Some(c) = figures.iter().find(|f| f.name == *counted) else {
            continue;
        };
        if c.status() != "PASS" {
            continue;
        }
        let note = format!(
            "the instructions of the same work pass at {:.2}x ({counted}): the time \
             difference is the machine's noise and code placement, not more work",
            c.ratio()
        );
        if let Some(f) = figures
            .iter_mut()
            .find(|f| f.name == *timed && f.status() == "MISS")
        {
            f.notes.push(note);
        }
    }
}

/// The notes of the figures, one line each, or nothing when there are none.
pub fn notes(figures: &[Figure]) -> String {
    let mut out = String::new();
    for f in figures {
        for n in &f.notes {
            let _ = writeln!(out, "note: {}: {n}", f.name);
        }
    }
    out
}

/// `min..max` of the runs, or the single value.
fn spread(runs: &[f64]) -> String {
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match runs.len() {
        0 => "-".to_owned(),
        1 => human(min),
        _ => format!("{}..{}", human(min), human(max)),
    }
}

/// Median of the values (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn median_of_odd_and_even_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn status_checks_every_target_against_the_medians() {
        let f = Figure::from_runs(
            "publish",
            "events/s",
            Better::Higher,
            vec![90.0, 95.0, 80.0],
            vec![100.0, 100.0, 100.0],
        );
        assert_eq!(f.status(), "");
        let pass = f.clone().target(Target::RatioAtLeast(0.9));
        assert_eq!(pass.status(), "PASS");
        let miss = pass.clone().target(Target::AtLeast(300.0));
        assert_eq!(miss.status(), "MISS");
        let line: serde_json::Value = serde_json::from_str(&miss.json()).unwrap();
        assert_eq!(line["figure"], "publish");
        assert_eq!(line["tidings"], 90.0);
        assert_eq!(line["baseline"], 100.0);
        assert_eq!(line["ratio"], 0.9);
        assert_eq!(line["unit"], "events/s");
        assert_eq!(line["status"], "MISS");
    }

    #[test]
    fn best_of_runs_takes_the_fastest_run() {
        let f = Figure::best_of_runs(
            "d",
            "ns",
            Better::Lower,
            vec![5.0, 3.0, 9.0],
            vec![4.0, 6.0],
        );
        assert_eq!((f.tidings, f.baseline), (3.0, 4.0));
        let f = Figure::best_of_runs("p", "ev/s", Better::Higher, vec![5.0, 3.0], vec![4.0, 6.0]);
        assert_eq!((f.tidings, f.baseline), (5.0, 6.0));
    }

    fn throughput(name: &str, tidings: f64, baseline: f64) -> Figure {
        Figure::from_runs(
            name,
            "events/s",
            Better::Higher,
            vec![tidings],
            vec![baseline],
        )
    }

    #[test]
    fn a_floor_above_redis_own_client_is_noted_and_still_missed() {
        let mut figures = vec![
            throughput("publish_batch_100", 90_000.0, 60_000.0)
                .target(Target::RatioAtLeast(0.8))
                .target(Target::AtLeast(300_000.0)),
            throughput("redis_benchmark_xadd_p100", 90_000.0, 147_000.0),
            throughput("redis_benchmark_xadd_p100_c4", 90_000.0, 175_000.0),
        ];
        note_floors_above_the_ceiling(
            &mut figures,
            &[(
                "publish_batch_100",
                &["redis_benchmark_xadd_p100", "redis_benchmark_xadd_p100_c4"],
            )],
        );
        assert_eq!(figures[0].status(), "MISS");
        assert_eq!(figures[0].notes.len(), 1, "{:?}", figures[0].notes);
        let note = &figures[0].notes[0];
        assert!(
            note.contains("300,000")
                && note.contains("175,000 events/s, redis_benchmark_xadd_p100_c4"),
            "the best ceiling is named: {note}"
        );
        let line: serde_json::Value = serde_json::from_str(&figures[0].json()).unwrap();
        assert_eq!(line["notes"][0], note.as_str());
        assert!(notes(&figures).starts_with("note: publish_batch_100: the floor"));
        assert!(figures[1].notes.is_empty());
    }

    #[test]
    fn a_floor_redis_own_client_reaches_gets_no_note() {
        let mut figures = vec![
            throughput("publish_batch_100", 290_000.0, 240_000.0)
                .target(Target::AtLeast(300_000.0)),
            throughput("redis_benchmark_xadd_p100", 290_000.0, 299_000.0),
            throughput("redis_benchmark_xadd_p100_c4", 290_000.0, 420_000.0),
            throughput("consume_ack", 300_000.0, 100_000.0).target(Target::RatioAtLeast(0.8)),
            throughput("redis_benchmark_xreadgroup_100", 300_000.0, 100_000.0),
        ];
        note_floors_above_the_ceiling(
            &mut figures,
            &[
                (
                    "publish_batch_100",
                    &["redis_benchmark_xadd_p100", "redis_benchmark_xadd_p100_c4"],
                ),
                // No floor on this one, and a ceiling figure that is absent.
                (
                    "consume_ack",
                    &["redis_benchmark_xreadgroup_100", "redis_benchmark_missing"],
                ),
                // A figure that was not measured.
                ("publish_awaited", &["redis_benchmark_xadd"]),
            ],
        );
        assert!(figures.iter().all(|f| f.notes.is_empty()));
        assert_eq!(notes(&figures), "");
        assert_eq!(figures[0].status(), "MISS");
        let line: serde_json::Value = serde_json::from_str(&figures[0].json()).unwrap();
        assert_eq!(line["notes"], serde_json::json!([]));
    }

    #[test]
    fn a_bound_the_baseline_misses_too_is_noted() {
        let latency = |t: f64, b: f64| {
            Figure::from_runs("latency_5k_p99", "ms", Better::Lower, vec![t], vec![b])
                .target(Target::AtMost(0.5))
        };
        let mut figures = vec![
            latency(0.525, 0.550),
            // tidings misses alone: no note.
            latency(0.525, 0.450),
            // tidings meets it: no note, whatever the baseline.
            latency(0.450, 0.550),
            // Ratio targets are not absolute bounds.
            throughput("publish_awaited", 80.0, 100.0).target(Target::RatioAtLeast(0.9)),
            // Already told why by Redis's own client: no second note.
            Figure {
                notes: vec!["the floor of 300,000 events/s is above …".to_owned()],
                ..throughput("publish_batch_100", 90.0, 80.0).target(Target::AtLeast(300.0))
            },
        ];
        note_bounds_the_baseline_misses(&mut figures);
        assert_eq!(
            figures[0].notes,
            ["the baseline misses <= 0.500 ms too in this run (0.550 ms)"]
        );
        assert_eq!(figures[0].status(), "MISS");
        assert!(figures[1..4].iter().all(|f| f.notes.is_empty()));
        assert_eq!(figures[4].notes.len(), 1);
    }

    #[test]
    fn a_timed_miss_is_set_beside_its_instruction_count() {
        let decode = |name: &str, t: f64, unit: &'static str| {
            Figure::from_runs(name, unit, Better::Lower, vec![t], vec![100.0])
                .target(Target::RatioAtMost(1.05))
        };
        let pairs = [("decode_current", "decode_current_instructions")];
        let mut figures = vec![
            decode("decode_current", 106.0, "ns/event"),
            decode("decode_current_instructions", 101.0, "instr/event"),
        ];
        note_times_against_instructions(&mut figures, &pairs);
        assert_eq!(figures[0].notes.len(), 1);
        assert!(
            figures[0].notes[0].contains("pass at 1.01x"),
            "{:?}",
            figures[0].notes
        );
        assert!(figures[1].notes.is_empty());

        // More instructions too: no excuse.
        let mut figures = vec![
            decode("decode_current", 106.0, "ns/event"),
            decode("decode_current_instructions", 106.0, "instr/event"),
        ];
        note_times_against_instructions(&mut figures, &pairs);
        assert!(figures.iter().all(|f| f.notes.is_empty()));

        // A timed figure that passes needs no note.
        let mut figures = vec![
            decode("decode_current", 104.0, "ns/event"),
            decode("decode_current_instructions", 101.0, "instr/event"),
        ];
        note_times_against_instructions(&mut figures, &pairs);
        assert!(figures.iter().all(|f| f.notes.is_empty()));
    }

    #[test]
    fn table_has_a_row_per_figure_with_its_status() {
        let f = Figure::from_runs(
            "decode_current",
            "ns/event",
            Better::Lower,
            vec![520.0],
            vec![500.0],
        )
        .target(Target::RatioAtMost(1.05));
        let t = table(&[f]);
        let row = t.lines().nth(2).unwrap();
        assert!(row.starts_with("decode_current"), "{t}");
        assert!(row.contains("1.04x") && row.contains("PASS"), "{t}");
    }
}
