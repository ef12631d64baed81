//! The report's charts, SVG: read latency per stack (`report.svg`), the whole cold start of
//! each Python peer beside its Rust counterpart (`cold-starts.svg`), and a month of each stack
//! at the fleet's rate, its fixed fees, requests and compute side by side with the total
//! printed (`monthly-cost.svg`: stacked on a log scale, the first part would look largest).
//! Horizontal bars on a log scale, one row per stack, the legend under the axis.

use plotters::prelude::*;

use crate::report::{Run, TargetKind};

/// One series: its legend and colour.
struct Series {
    label: &'static str,
    colour: RGBColor,
}

/// One row: its label and its bars, each bar a stack of (series, value) segments.
struct Row {
    label: String,
    bars: Vec<Vec<(usize, f64)>>,
    /// Printed after the row's bars.
    note: Option<String>,
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(127, 127, 127);

fn horizontal_bars(
    title: &str,
    x_desc: &str,
    series: &[Series],
    rows: &[Row],
) -> Result<String, String> {
    // Each bar's segments end at their running sums.
    let ends = rows.iter().flat_map(|row| {
        row.bars.iter().flat_map(|bar| {
            bar.iter()
                .scan(0.0, |sum, (_, v)| {
                    *sum += v;
                    Some(*sum)
                })
                .collect::<Vec<_>>()
        })
    });
    let (low, high) = ends
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low > high {
        (0.001, 1.0)
    } else {
        // Half a decade of room under the smallest bar, so it still shows, and room on the
        // right for the notes.
        (
            10f64.powf((low.max(1e-6).log10() - 0.5).floor()),
            10f64.powf(high.log10().ceil() + 0.5),
        )
    };
    let per_row = 14 + 16 * rows.iter().map(|r| r.bars.len()).max().unwrap_or(1) as u32;
    let height = 110 + per_row * rows.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (chart_area, legend_area) = root.split_vertically(height - 26);
        let n = rows.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(300)
            .build_cartesian_2d((low..high).log_scale(), 0.0..n)
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let index = (n - y - 0.5).round();
                if (n - y - 0.5 - index).abs() < 1e-6 && index >= 0.0 {
                    names.get(index as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(x_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, row) in rows.iter().enumerate() {
            let top = n - i as f64;
            let slot = 0.9 / row.bars.len().max(1) as f64;
            let mut right = low;
            for (j, bar) in row.bars.iter().enumerate() {
                let upper = top - 0.05 - slot * j as f64;
                let lower = upper - slot * 0.8;
                let mut from = low;
                for (which, value) in bar {
                    let to = from + value;
                    if *value > 0.0 {
                        let colour = series.get(*which).map_or(GREY, |s| s.colour);
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(from, lower), (to, upper)],
                                colour.filled(),
                            )))
                            .map_err(|e| e.to_string())?;
                    }
                    from = to;
                }
                right = right.max(from);
            }
            if let Some(note) = &row.note {
                chart
                    .draw_series(std::iter::once(Text::new(
                        note.clone(),
                        (right * 1.15, top - 0.3),
                        ("sans-serif", 11),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut x = 300;
        for s in series {
            legend_area
                .draw(&Rectangle::new([(x, 6), (x + 12, 16)], s.colour.filled()))
                .map_err(|e| e.to_string())?;
            legend_area
                .draw(&Text::new(s.label, (x + 18, 5), ("sans-serif", 12)))
                .map_err(|e| e.to_string())?;
            x += 30 + 7 * s.label.len() as i32;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// p50 cold start (init + first read) and warm read per stack of the function.
pub(crate) fn latency(run: &Run) -> Result<String, String> {
    let stacks = crate::report::stack_p50s(run);
    let rows: Vec<Row> = stacks
        .into_iter()
        .map(|(name, cold, warm)| Row {
            label: name,
            bars: vec![
                cold.map(|v| vec![(0, v)]).unwrap_or_default(),
                warm.map(|v| vec![(1, v)]).unwrap_or_default(),
            ],
            note: None,
        })
        .collect();
    let title = match run.target.kind {
        TargetKind::EmulatorLoopback => {
            "p50 read latency per stack, ms (emulator on loopback, not AWS)"
        }
        TargetKind::AwsLambda => "p50 read latency per stack, ms (AWS Lambda)",
        TargetKind::LocalRunnerAws => "p50 read latency per stack, ms (local runner, AWS services)",
    };
    horizontal_bars(
        title,
        "ms (log scale)",
        &[
            Series {
                label: "cold: init + first read",
                colour: BLUE,
            },
            Series {
                label: "warm read",
                colour: ORANGE,
            },
        ],
        &rows,
    )
}

/// The whole cold start (process init + first read, p50) of each Python peer beside the Rust
/// stack that does the same; `None` without peers.
pub(crate) fn cold_starts(run: &Run) -> Option<Result<String, String>> {
    let p50s = crate::cpu_share::cold_start_p50s(run);
    let mut pairs: Vec<(String, String)> = run
        .peers
        .iter()
        .flat_map(|p| p.invocations.iter())
        .filter_map(|i| i.response.as_ref())
        .flat_map(|r| r.stacks.iter())
        .filter_map(|s| Some((s.name.clone(), s.compare_with.clone()?)))
        .collect();
    pairs.sort();
    pairs.dedup();
    let rows: Vec<Row> = pairs
        .into_iter()
        .filter_map(|(peer, rust)| {
            let (python, ours) = (p50s.get(&peer)?, p50s.get(&rust)?);
            Some(Row {
                label: format!("{} / {rust}", peer.trim_start_matches("python-")),
                bars: vec![vec![(0, *python)], vec![(1, *ours)]],
                note: Some(format!("{:.0}×", python / ours.max(f64::EPSILON))),
            })
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some(horizontal_bars(
        "p50 cold start (process init + first read), ms: each Python peer and its Rust stack",
        "ms (log scale); the number: Python / Rust",
        &[
            Series {
                label: "Python peer",
                colour: GREEN,
            },
            Series {
                label: "Rust stack (secret-loader)",
                colour: BLUE,
            },
        ],
        &rows,
    ))
}

/// A month of each stack at the fleet's rate, stacked: fixed fees, requests, compute.
pub(crate) fn monthly_cost(run: &Run) -> Result<String, String> {
    let (stacks, compute) = crate::report::fleet_inputs(run);
    let quotas = run.quotas.for_region(&run.target.region);
    let rows: Vec<Row> = stacks
        .iter()
        .filter(|(_, s)| s.per_cold_start.is_some() || s.per_warm_read.is_some())
        .map(|(name, stack)| {
            let month =
                crate::fleet::model(stack, &quotas, &run.prices, run.fleet, compute).monthly;
            let fixed: f64 = month.fixed.iter().map(|(_, usd)| usd).sum();
            Row {
                label: name.clone(),
                bars: vec![
                    vec![(0, fixed)],
                    vec![(1, month.requests)],
                    vec![(2, month.compute)],
                ],
                note: Some(format!("${:.2}", month.total())),
            }
        })
        .collect();
    horizontal_bars(
        &format!(
            "USD a month at {} cold starts/s and {} warm reads/s ({}; a model): the parts, and the total",
            crate::fleet::rate_text(run.fleet.cold_per_s),
            crate::fleet::rate_text(run.fleet.reads_per_s),
            run.target.region
        ),
        "USD per 30 days (log scale)",
        &[
            Series {
                label: "fixed fees",
                colour: GREY,
            },
            Series {
                label: "requests",
                colour: BLUE,
            },
            Series {
                label: "compute of the reads",
                colour: ORANGE,
            },
        ],
        &rows,
    )
}
