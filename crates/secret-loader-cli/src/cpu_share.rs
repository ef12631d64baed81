//! Lambda's CPU share applied to the measured cold starts: a model from each cold start's
//! CPU time, and beside it, where the run had one, the same function under a real CPU quota.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Invocation, Run, ms, percentile};

/// Where AWS documents the share: "At 1,769 MB, a function has the equivalent of one vCPU
/// (one vCPU-second of credits per second)"; every Region.
pub(crate) const SHARE_SOURCE: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html";

/// The memory sizes the model is given for: one vCPU, the comparison's default, the least.
const MODEL_MEMORY_MB: [u32; 3] = [1769, 512, 128];

/// The share of one CPU a single-threaded cold start can use at `memory_mb` (Lambda gives
/// more than one vCPU above 1,769 MB; one thread uses one).
pub(crate) fn share(memory_mb: u32) -> f64 {
    secret_loader_harness::lambda_cpu_share(memory_mb).min(1.0)
}

/// `wall` at `share` of one CPU: the time not on the CPU (waiting on the network, on other
/// processes) as measured, the CPU time stretched by 1 / share.
pub(crate) fn at_share(wall_ms: f64, cpu_ms: f64, share: f64) -> f64 {
    (wall_ms - cpu_ms).max(0.0) + cpu_ms / share
}

/// One cold start of one stack, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cold {
    wall: f64,
    cpu: f64,
}

/// Per stack, each cold start as a function holding that stack alone would pay it: its
/// process's init (less the other stacks' building, where the process built several and timed
/// each) and the stack's first read. Only cold starts whose CPU time was recorded.
fn cold_starts(invocations: &[Invocation]) -> BTreeMap<String, Vec<Cold>> {
    let mut by_stack: BTreeMap<String, Vec<Cold>> = BTreeMap::new();
    for invocation in invocations {
        let (Some(response), Some(report)) = (&invocation.response, &invocation.report) else {
            continue;
        };
        let (true, Some(init), Some(init_cpu)) =
            (response.cold, report.init_ms, response.init_cpu_ms)
        else {
            continue;
        };
        // The stacks built (and timed) one by one inside this process.
        let timed: Vec<(f64, f64)> = response
            .stacks
            .iter()
            .filter_map(|s| Some((s.init_ms?, s.init_cpu_ms?)))
            .collect();
        let all_wall: f64 = timed.iter().map(|(wall, _)| wall).sum();
        let all_cpu: f64 = timed.iter().map(|(_, cpu)| cpu).sum();
        for stack in &response.stacks {
            let (Some(first), Some(first_cpu)) = (stack.first_read_ms, stack.first_read_cpu_ms)
            else {
                continue;
            };
            let (own_wall, own_cpu) = match (stack.init_ms, stack.init_cpu_ms) {
                (Some(wall), Some(cpu)) => (wall, cpu),
                _ => (all_wall, all_cpu),
            };
            by_stack.entry(stack.name.clone()).or_default().push(Cold {
                wall: init - (all_wall - own_wall) + first,
                cpu: (init_cpu - (all_cpu - own_cpu)).max(0.0) + first_cpu,
            });
        }
    }
    by_stack
}

/// Per stack of the function and of every peer, the p50 of its whole cold start, wall, ms
/// (process init as a function holding that stack alone would pay it, plus the first read).
pub(crate) fn cold_start_p50s(run: &Run) -> BTreeMap<String, f64> {
    std::iter::once(run.invocations.as_slice())
        .chain(run.peers.iter().map(|p| p.invocations.as_slice()))
        .flat_map(cold_starts)
        .filter_map(|(name, colds)| Some((name, p50_of(&colds, |c| c.wall)?)))
        .collect()
}

/// Per stack, the warm reads' CPU time per read (all invocations together).
fn warm_cpu(invocations: &[Invocation]) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for response in invocations.iter().filter_map(|i| i.response.as_ref()) {
        for stack in &response.stacks {
            if let (Some(cpu), Some(warm)) = (stack.warm_cpu_ms, &stack.warm) {
                let total = totals.entry(stack.name.clone()).or_default();
                total.0 += cpu;
                total.1 += u64::from(warm.count);
            }
        }
    }
    totals
        .into_iter()
        .filter(|(_, (_, reads))| *reads > 0)
        .map(|(name, (cpu, reads))| (name, cpu / reads as f64))
        .collect()
}

/// The p50 of `f` over `samples` (each sample modelled first, then ranked).
fn p50_of<T>(samples: &[T], f: impl Fn(&T) -> f64) -> Option<f64> {
    let mut values: Vec<f64> = samples.iter().map(f).collect();
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), ms)
}

/// Process init per function: wall, CPU, and the CPU's part of it.
fn inits(invocations: &[Invocation]) -> Vec<Cold> {
    invocations
        .iter()
        .filter_map(|i| {
            let response = i.response.as_ref().filter(|r| r.cold)?;
            Some(Cold {
                wall: i.report.as_ref()?.init_ms?,
                cpu: response.init_cpu_ms?,
            })
        })
        .collect()
}

/// The report's section; empty when no cold start recorded its CPU time.
pub(crate) fn markdown(run: &Run) -> String {
    let functions: Vec<(&str, &[Invocation])> =
        std::iter::once((run.target.function.as_str(), run.invocations.as_slice()))
            .chain(
                run.peers
                    .iter()
                    .map(|p| (p.function.as_str(), p.invocations.as_slice())),
            )
            .collect();
    if functions.iter().all(|(_, i)| inits(i).is_empty()) {
        return String::new();
    }
    let mut out = String::new();
    let shares: Vec<String> = MODEL_MEMORY_MB
        .iter()
        .map(|&mb| format!("{:.3} at {mb} MB", share(mb)))
        .collect();
    let _ = writeln!(
        out,
        "\n## CPU time, and Lambda's CPU share (model)\n\n\
         Each process recorded its CPU time (user + system, every thread, as the kernel \
         accounts it: `CLOCK_PROCESS_CPUTIME_ID`, Python's `time.process_time()`) beside the \
         wall time, from its start to the end of its INIT and around each read. Lambda gives \
         a function CPU in proportion to its memory, one vCPU at 1,769 MB \
         ([{SHARE_SOURCE}]({SHARE_SOURCE}), every Region): {}. **Modelled** = (wall − CPU) + \
         CPU / share: the time off the CPU (round trips, the emulator, other processes) as \
         measured, the CPU time stretched. A model, not a measurement: it takes this \
         machine's core for a Lambda vCPU, a process that uses one core at a time, and the \
         same share during INIT as after it (AWS documents no other for INIT). The \
         `python-extension` and `python-agent` rows count the Python process only: their \
         extension's CPU, which shares the quota on Lambda, is not in them.\n",
        shares.join(", ")
    );
    let _ = writeln!(
        out,
        "| Function | Process init, wall (p50) | CPU time (p50) | CPU / wall (p50) |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for (function, invocations) in &functions {
        let inits = inits(invocations);
        if inits.is_empty() {
            continue;
        }
        let ratio = p50_of(&inits, |c| c.cpu / c.wall.max(f64::EPSILON));
        let _ = writeln!(
            out,
            "| {function} | {} | {} | {} |",
            cell(p50_of(&inits, |c| c.wall)),
            cell(p50_of(&inits, |c| c.cpu)),
            ratio.map_or_else(|| "–".into(), |r| format!("{:.0} %", r * 100.0)),
        );
    }
    let _ = writeln!(
        out,
        "\nCold start per stack (process init, less the other stacks' building where the \
         process built several, + the first read), ms, p50; then as modelled at each memory \
         size:\n"
    );
    let headers: Vec<String> = MODEL_MEMORY_MB
        .iter()
        .map(|mb| format!("Modelled at {mb} MB"))
        .collect();
    let _ = writeln!(
        out,
        "| Stack | Cold start, wall | CPU time | {} | CPU / warm read |",
        headers.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|{}---|", "---|".repeat(headers.len()));
    for (_, invocations) in &functions {
        let warm = warm_cpu(invocations);
        for (name, colds) in cold_starts(invocations) {
            let modelled: Vec<String> = MODEL_MEMORY_MB
                .iter()
                .map(|&mb| cell(p50_of(&colds, |c| at_share(c.wall, c.cpu, share(mb)))))
                .collect();
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                cell(p50_of(&colds, |c| c.wall)),
                cell(p50_of(&colds, |c| c.cpu)),
                modelled.join(" | "),
                cell(warm.get(&name).copied()),
            );
        }
    }
    if let Some(limited) = &run.cpu_limited {
        out.push_str(&limited_section(run, limited));
    }
    out
}

/// The model beside a measurement under a real quota.
fn limited_section(run: &Run, limited: &crate::report::LimitedRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### The model against a real quota\n\n\
         The Rust function's cold starts again, its processes in a cgroup whose CPU quota is \
         {:.3} of one CPU ({} MB's share; {}), {} cold starts. Modelled: the unlimited cold \
         starts above at that share. Measured: under the quota.\n",
        limited.share,
        limited.memory_mb,
        limited.mechanism,
        limited
            .invocations
            .iter()
            .filter(|i| i.response.as_ref().is_some_and(|r| r.cold))
            .count(),
    );
    let _ = writeln!(
        out,
        "| Stack | Cold start, unlimited | Modelled at {mb} MB | Measured at {mb} MB | Measured / modelled |",
        mb = limited.memory_mb
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let unlimited = cold_starts(&run.invocations);
    for (name, colds) in cold_starts(&limited.invocations) {
        let Some(free) = unlimited.get(&name) else {
            continue;
        };
        let modelled = p50_of(free, |c| at_share(c.wall, c.cpu, limited.share));
        let measured = p50_of(&colds, |c| c.wall);
        let ratio = modelled
            .zip(measured)
            .map_or_else(|| "–".into(), |(m, r)| format!("{:.2}", r / m));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {ratio} |",
            cell(p50_of(free, |c| c.wall)),
            cell(modelled),
            cell(measured),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_memory_over_1769_mb_and_one_thread_at_most() {
        assert!((share(1769) - 1.0).abs() < 1e-12);
        assert!((share(512) - 0.2894).abs() < 1e-4);
        assert!((share(10240) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn only_the_cpu_time_stretches() {
        // 10 ms of wall, 4 of them on the CPU: 6 ms of waiting stay, 4 ms become 8 at half.
        assert!((at_share(10.0, 4.0, 0.5) - 14.0).abs() < 1e-9);
        // A whole CPU changes nothing.
        assert!((at_share(10.0, 4.0, 1.0) - 10.0).abs() < 1e-9);
        // Two threads on two cores (CPU above wall): no waiting left, all CPU stretched.
        assert!((at_share(10.0, 15.0, 0.5) - 30.0).abs() < 1e-9);
    }
}
