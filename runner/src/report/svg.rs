//! The report's plots as inline SVG, drawn by hand (a few hundred lines
//! instead of a JS charting library, so the report is one small offline file).
//! Every plot shares the run's time axis (seconds) and shades fault intervals.

use super::escape;
use super::stats::{Controller, FaultInterval, Segment, Stats};
use splitbrain_core::cluster::ZkMode;
use std::fmt::Write;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// Colours of plotted series, by name; others cycle through [`PALETTE`].
fn series_colour(name: &str, i: usize) -> &'static str {
    match name {
        "send ok" => "#1f77b4",
        "send fail" => "#d62728",
        "send info" => "#ff7f0e",
        "poll ok" => "#2ca02c",
        "records read" => "#17becf",
        "replay ok" => "#9467bd",
        "poll fail" => "#8c564b",
        "poll info" => "#e377c2",
        "replay fail" => "#bcbd22",
        "replay info" => "#7f7f7f",
        _ => PALETTE[i % PALETTE.len()],
    }
}

/// Distinct colours for controllers and other categories.
pub const PALETTE: &[&str] = &[
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#ff7f0e", "#d62728",
];

fn mode_colour(mode: ZkMode) -> &'static str {
    match mode {
        ZkMode::Leader => "#d62728",
        ZkMode::Follower => "#1f77b4",
        ZkMode::Observer => "#9ecae1",
        ZkMode::Standalone => "#9467bd",
        ZkMode::Looking => "#ffbb78",
        ZkMode::Unreachable => "#c7c7c7",
    }
}

fn mode_name(mode: ZkMode) -> &'static str {
    match mode {
        ZkMode::Leader => "leader",
        ZkMode::Follower => "follower",
        ZkMode::Observer => "observer",
        ZkMode::Standalone => "standalone",
        ZkMode::Looking => "looking",
        ZkMode::Unreachable => "unreachable",
    }
}

/// "Nice" tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / want.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= want as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A plot area with a time x axis in seconds.
struct Frame {
    id: &'static str,
    height: f64,
    end_s: f64,
    out: String,
}

impl Frame {
    fn new(id: &'static str, title: &str, height: f64, end_ns: u64) -> Frame {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg class="plot" id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img"><title>{}</title><text class="title" x="{LEFT}" y="16">{}</text>"#,
            escape(title),
            escape(title)
        );
        Frame {
            id,
            height,
            end_s: (end_ns as f64 / 1e9).max(1e-3),
            out,
        }
    }

    fn x(&self, ns: u64) -> f64 {
        LEFT + (ns as f64 / 1e9) / self.end_s * (WIDTH - LEFT - RIGHT)
    }

    fn bottom(&self) -> f64 {
        self.height - BOTTOM
    }

    fn faults(&mut self, faults: &[FaultInterval], end_ns: u64) {
        for (i, f) in faults.iter().enumerate() {
            let x0 = self.x(f.start_ns);
            let x1 = self.x(f.end_ns.unwrap_or(end_ns)).max(x0 + 1.0);
            let _ = write!(
                self.out,
                r#"<rect class="fault" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
                x1 - x0,
                self.bottom() - TOP,
                escape(&format!(
                    "{} {:.1}s–{}: {}",
                    f.f,
                    f.start_ns as f64 / 1e9,
                    f.end_ns
                        .map_or("end".into(), |e| format!("{:.1}s", e as f64 / 1e9)),
                    f.value
                ))
            );
            // Stagger labels so overlapping faults stay readable.
            let _ = write!(
                self.out,
                r#"<text class="fault-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x0 + 2.0,
                TOP + 10.0 + (i % 3) as f64 * 10.0,
                escape(&f.f)
            );
        }
    }

    fn x_axis(&mut self) {
        let b = self.bottom();
        let _ = write!(
            self.out,
            r#"<line class="axis" x1="{LEFT}" y1="{b}" x2="{}" y2="{b}"/>"#,
            WIDTH - RIGHT
        );
        for t in ticks(0.0, self.end_s, 10) {
            let x = self.x((t * 1e9) as u64);
            let _ = write!(
                self.out,
                r#"<line class="tick" x1="{x:.1}" y1="{b}" x2="{x:.1}" y2="{:.1}"/><text class="tick-label" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                b + 4.0,
                b + 16.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            self.out,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            self.height - 4.0
        );
    }

    fn legend(&mut self, items: &[(String, &str)]) {
        let mut x = WIDTH - RIGHT;
        for (label, colour) in items.iter().rev() {
            x -= 14.0 + label.len() as f64 * 6.5;
            let _ = write!(
                self.out,
                r#"<rect x="{x:.1}" y="7" width="10" height="10" fill="{colour}"/><text class="legend" x="{:.1}" y="16">{}</text>"#,
                x + 13.0,
                escape(label)
            );
            x -= 6.0;
        }
    }

    fn empty(&mut self, why: &str) {
        let _ = write!(
            self.out,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + WIDTH) / 2.0,
            (TOP + self.bottom()) / 2.0,
            escape(why)
        );
    }

    fn finish(mut self) -> String {
        self.x_axis();
        self.out.push_str("</svg>");
        let _ = self.id;
        self.out
    }
}

/// Latency of every completed client operation against its start time, log
/// scale, one colour per series (`send ok`, `send info`, `poll ok`...).
pub fn latency(stats: &Stats) -> String {
    let mut f = Frame::new(
        "latency",
        "Latency of sends and polls (ms, log scale) — shaded: faults",
        330.0,
        stats.end_ns,
    );
    f.faults(&stats.faults, stats.end_ns);
    let all = || stats.latency_points.values().flat_map(|s| s.points.iter());
    let Some(max) = all().map(|p| p.1).max() else {
        f.empty("no completed client operations");
        return f.finish();
    };
    let lo =
        10f64.powf(((all().map(|p| p.1).min().unwrap_or(1).max(1) as f64 / 1e6).log10()).floor());
    let hi = 10f64
        .powf(((max.max(1) as f64) / 1e6).log10().ceil())
        .max(lo * 10.0);
    let (llo, lhi) = (lo.log10(), hi.log10());
    let b = f.bottom();
    let y = |ms: f64| b - (ms.max(lo).log10() - llo) / (lhi - llo) * (b - TOP);
    let mut e = llo as i32;
    while e as f64 <= lhi {
        let v = 10f64.powi(e);
        let yy = y(v);
        let _ = write!(
            f.out,
            r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}"/><text class="tick-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            fmt_tick(v)
        );
        e += 1;
    }
    let mut legend = vec![];
    for (i, (name, series)) in stats.latency_points.iter().enumerate() {
        let colour = series_colour(name, i);
        legend.push((name.clone(), colour));
        let _ = write!(
            f.out,
            r#"<g class="series" data-series="{}" fill="{colour}">"#,
            escape(name)
        );
        for &(t, lat) in &series.points {
            let _ = write!(
                f.out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.6"/>"#,
                f.x(t),
                y(lat as f64 / 1e6)
            );
        }
        f.out.push_str("</g>");
    }
    f.legend(&legend);
    f.finish()
}

/// Completions per second over time, one line per series.
pub fn throughput(stats: &Stats) -> String {
    let mut f = Frame::new(
        "throughput",
        "Throughput (per second) — shaded: faults",
        280.0,
        stats.end_ns,
    );
    f.faults(&stats.faults, stats.end_ns);
    let width_s = (stats.bucket_ns as f64 / 1e9).max(1.0);
    let max = stats
        .throughput
        .values()
        .flat_map(|c| c.values())
        .map(|&n| n as f64 / width_s)
        .fold(0.0, f64::max);
    if max == 0.0 {
        f.empty("no completed client operations");
        return f.finish();
    }
    let top_tick = *ticks(0.0, max, 5).last().unwrap_or(&max);
    let hi = top_tick.max(max);
    let b = f.bottom();
    let y = |v: f64| b - v / hi * (b - TOP);
    for t in ticks(0.0, hi, 5) {
        let yy = y(t);
        let _ = write!(
            f.out,
            r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}"/><text class="tick-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            fmt_tick(t)
        );
    }
    let buckets = stats.end_ns / stats.bucket_ns.max(1) + 1;
    let mut legend = vec![];
    for (i, (name, counts)) in stats.throughput.iter().enumerate() {
        let colour = series_colour(name, i);
        legend.push((name.clone(), colour));
        let mut pts = String::new();
        for k in 0..buckets {
            let n = counts.get(&k).copied().unwrap_or(0) as f64 / width_s;
            let mid = k * stats.bucket_ns + stats.bucket_ns / 2;
            let _ = write!(pts, "{:.1},{:.1} ", f.x(mid.min(stats.end_ns)), y(n));
        }
        let _ = write!(
            f.out,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            escape(name),
            pts.trim_end()
        );
    }
    f.legend(&legend);
    f.finish()
}

/// Lanes of coloured segments: one lane per name, a segment from each
/// change until the next (or the end).
fn lanes<T>(
    f: &mut Frame,
    lanes: &[(String, &[Segment<T>])],
    end_ns: u64,
    colour: impl Fn(&T) -> String,
    label: impl Fn(&T) -> String,
) {
    let lane_h = ((f.bottom() - TOP) / lanes.len().max(1) as f64).min(26.0);
    for (i, (name, segs)) in lanes.iter().enumerate() {
        let y = TOP + i as f64 * lane_h;
        let _ = write!(
            f.out,
            r#"<text class="lane-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + lane_h * 0.65,
            escape(name)
        );
        for (k, seg) in segs.iter().enumerate() {
            let end = segs.get(k + 1).map_or(end_ns, |n| n.start_ns);
            let x0 = f.x(seg.start_ns);
            let w = (f.x(end) - x0).max(1.0);
            let text = label(&seg.value);
            if text.is_empty() {
                continue; // not observed: leave the lane empty
            }
            let _ = write!(
                f.out,
                r#"<rect class="segment" data-value="{}" x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                escape(&text),
                y + 2.0,
                lane_h - 4.0,
                colour(&seg.value),
                escape(&format!(
                    "{name}: {text} from {:.1}s to {:.1}s",
                    seg.start_ns as f64 / 1e9,
                    end as f64 / 1e9
                ))
            );
            if w > 8.0 * text.len() as f64 {
                let _ = write!(
                    f.out,
                    r#"<text class="segment-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    x0 + 3.0,
                    y + lane_h * 0.65,
                    escape(&text)
                );
            }
        }
    }
}

/// Each ZooKeeper server's mode over time, with a top lane counting the
/// quorum-backed leaders (the split-brain checker's rule): two show as a
/// red band.
pub fn zk_modes(stats: &Stats) -> String {
    let n = stats.zk_modes.len();
    let height = TOP + BOTTOM + 26.0 * (n as f64 + 1.0) + 4.0;
    let mut f = Frame::new(
        "zk-modes",
        "ZooKeeper server mode over time (top lane: how many quorum-backed leaders)",
        height.max(120.0),
        stats.end_ns,
    );
    f.faults(&stats.faults, stats.end_ns);
    if n == 0 {
        f.empty("no observer samples in this history");
        return f.finish();
    }
    lanes(
        &mut f,
        &[("leaders".to_string(), stats.leaders.as_slice())],
        stats.end_ns,
        |n| {
            match n {
                0 => "#c7c7c7",
                1 => "#98df8a",
                _ => "#d62728",
            }
            .to_string()
        },
        |n| format!("{n} leader{}", if *n == 1 { "" } else { "s" }),
    );
    // Shift the server lanes one lane down by prefixing an empty lane.
    let rows: Vec<(String, &[Segment<Option<ZkMode>>])> = std::iter::once((String::new(), &[][..]))
        .chain(
            stats
                .zk_modes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_slice())),
        )
        .collect();
    lanes(
        &mut f,
        &rows,
        stats.end_ns,
        |m| m.map_or("none", mode_colour).to_string(),
        |m| m.map_or("", mode_name).to_string(),
    );
    let legend: Vec<(String, &str)> = [
        ZkMode::Leader,
        ZkMode::Follower,
        ZkMode::Observer,
        ZkMode::Looking,
        ZkMode::Unreachable,
    ]
    .iter()
    .map(|m| (mode_name(*m).to_string(), mode_colour(*m)))
    .collect();
    f.legend(&legend);
    f.finish()
}

/// The controller each broker names, and the `/controller` each ZooKeeper
/// server serves, over time; one colour per controller id.
pub fn controllers(stats: &Stats) -> String {
    let n = stats.controllers.len();
    let height = TOP + BOTTOM + 26.0 * n as f64 + 4.0;
    let mut f = Frame::new(
        "controllers",
        "Controller as named by each broker and served by each ZooKeeper server",
        height.max(120.0),
        stats.end_ns,
    );
    f.faults(&stats.faults, stats.end_ns);
    if n == 0 {
        f.empty("no observer samples in this history");
        return f.finish();
    }
    // Brokers first: they are what clients see.
    let mut rows: Vec<(String, &[Segment<Controller>])> = stats
        .controllers
        .iter()
        .filter(|(k, _)| k.starts_with("broker"))
        .chain(
            stats
                .controllers
                .iter()
                .filter(|(k, _)| !k.starts_with("broker")),
        )
        .map(|(k, v)| (k.clone(), v.as_slice()))
        .collect();
    rows.dedup_by(|a, b| a.0 == b.0);
    lanes(
        &mut f,
        &rows,
        stats.end_ns,
        |c| match c {
            Controller::Broker(id) => {
                PALETTE[id.unsigned_abs() as usize % PALETTE.len()].to_string()
            }
            Controller::None => "#e0e0e0".to_string(),
            Controller::Absent => "none".to_string(),
        },
        |c| match c {
            Controller::Broker(id) => format!("controller {id}"),
            Controller::None => "no controller".to_string(),
            Controller::Absent => String::new(),
        },
    );
    f.finish()
}

/// Each partition's leader (one colour per broker, no leader grey) and ISR
/// size (green when every replica is in sync, orange below, red at one or
/// none) as ZooKeeper held them over time, two lanes per partition, faults
/// shaded.
pub fn partitions(stats: &Stats) -> String {
    let n = stats.partitions.len();
    let height = TOP + BOTTOM + 26.0 * (2 * n) as f64 + 4.0;
    let mut f = Frame::new(
        "partitions",
        "Partition leader and ISR size as ZooKeeper holds them",
        height.max(120.0),
        stats.end_ns,
    );
    f.faults(&stats.faults, stats.end_ns);
    if n == 0 {
        f.empty("no partition states in this history's observer samples");
        return f.finish();
    }
    let widest = stats
        .partitions
        .values()
        .flatten()
        .filter_map(|s| s.value.map(|v| v.isr))
        .max()
        .unwrap_or(0);
    let rows: Vec<(String, &[Segment<Option<super::stats::PartitionLane>>])> = stats
        .partitions
        .iter()
        .flat_map(|(k, v)| {
            [
                (format!("{k} leader"), v.as_slice()),
                (format!("{k} ISR"), v.as_slice()),
            ]
        })
        .collect();
    // Leader lanes and ISR lanes share the segments; each call draws its
    // own lanes and leaves the other's empty (and unlabelled).
    type Row<'a> = (String, &'a [Segment<Option<super::stats::PartitionLane>>]);
    let every_other = |parity: usize| -> Vec<Row<'_>> {
        rows.iter()
            .enumerate()
            .map(|(i, (k, v))| {
                if i % 2 == parity {
                    (k.clone(), *v)
                } else {
                    (String::new(), &[][..])
                }
            })
            .collect()
    };
    let leader_rows = every_other(0);
    lanes(
        &mut f,
        &leader_rows,
        stats.end_ns,
        |p| match p {
            Some(p) if p.leader >= 0 => {
                PALETTE[p.leader.unsigned_abs() as usize % PALETTE.len()].to_string()
            }
            Some(_) => "#e0e0e0".to_string(),
            None => "none".to_string(),
        },
        |p| match p {
            Some(p) if p.leader >= 0 => format!("{} e{}", p.leader, p.leader_epoch),
            Some(p) => format!("none e{}", p.leader_epoch),
            None => String::new(),
        },
    );
    let isr_rows = every_other(1);
    lanes(
        &mut f,
        &isr_rows,
        stats.end_ns,
        |p| match p {
            Some(p) if p.isr >= widest && p.isr > 1 => "#98df8a".to_string(),
            Some(p) if p.isr > 1 => "#ffbb78".to_string(),
            Some(_) => "#d62728".to_string(),
            None => "none".to_string(),
        },
        |p| p.map_or(String::new(), |p| format!("isr {}", p.isr)),
    );
    f.legend(&[
        ("all replicas in sync".to_string(), "#98df8a"),
        ("ISR shrunk".to_string(), "#ffbb78"),
        ("ISR of 1 or none".to_string(), "#d62728"),
        ("no leader".to_string(), "#e0e0e0"),
    ]);
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.0, 137.0, 10);
        assert_eq!(t[1], 20.0);
        assert!(*t.last().unwrap() >= 120.0);
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(1000.0), "1000");
        assert_eq!(fmt_tick(0.0001), "0.0001");
    }

    #[test]
    fn empty_stats_draw_empty_plots() {
        let s = Stats::default();
        for svg in [
            latency(&s),
            throughput(&s),
            zk_modes(&s),
            controllers(&s),
            partitions(&s),
        ] {
            assert!(svg.starts_with("<svg"));
            assert!(svg.ends_with("</svg>"));
            assert!(svg.contains("class=\"empty\""));
        }
    }
}
