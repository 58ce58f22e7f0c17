//! Callgrind's client requests, so that a service process counts only the
//! measured requests, and the reading of its per-thread output files.
//!
//! Outside valgrind the requests are no-ops: the instruction sequence that
//! carries them rotates a register by 128 bits in total and exchanges a
//! register with itself.

use std::path::Path;

use crate::BoxError;

/// `VG_USERREQ_TOOL_BASE('C', 'T')`: callgrind's requests.
const BASE: u64 = ((b'C' as u64) << 24) | ((b'T' as u64) << 16);
/// `CALLGRIND_START_INSTRUMENTATION`: counting starts, in every thread (the
/// process runs under `--instr-atstart=no`). Not `CALLGRIND_ZERO_STATS`,
/// which zeroes only the calling thread's counters.
const START_INSTRUMENTATION: u64 = BASE + 4;
/// `CALLGRIND_STOP_INSTRUMENTATION`: no more counting, in any thread; what
/// was counted is written at exit.
const STOP_INSTRUMENTATION: u64 = BASE + 5;

/// Counts from here on.
pub(crate) fn start_instrumentation() {
    request(START_INSTRUMENTATION);
}

/// Stops counting.
pub(crate) fn stop_instrumentation() {
    request(STOP_INSTRUMENTATION);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn request(code: u64) {
    let args: [u64; 6] = [code, 0, 0, 0, 0, 0];
    let mut result: u64 = 0;
    // SAFETY: valgrind's client-request sequence for amd64 (valgrind.h,
    // VALGRIND_DO_CLIENT_REQUEST_EXPR): valgrind reads the six words at
    // rax and writes its answer to rdx; natively the rotations add up to
    // 128 bits (rdi unchanged) and xchg of rbx with itself changes nothing.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") result,
            inout("rdi") 0u64 => _,
            options(nostack),
        );
    }
    let _answer = result;
}

#[cfg(not(target_arch = "x86_64"))]
fn request(_code: u64) {}

/// What a thread of a service process was doing, from the functions its
/// callgrind file names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum ThreadKind {
    /// The process's first thread: reads the parent's commands.
    Main,
    /// Serving requests: the runtime's workers.
    Requests,
    /// Exporting spans (and idle log export): Baton's batch threads,
    /// fastrace's collector.
    SpanExport,
    /// Anything else: `opentelemetry_sdk`'s periodic metric reader, idle
    /// helpers.
    Other,
}

impl ThreadKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Requests => "request path",
            ThreadKind::SpanExport => "span export",
            ThreadKind::Other => "other",
        }
    }
}

/// One thread's file: its number and kind, and the instructions it ran.
pub(crate) struct Thread {
    pub(crate) number: u32,
    pub(crate) kind: ThreadKind,
    pub(crate) instructions: u64,
}

/// Reads the per-thread files callgrind wrote for `prefix` (with
/// `--separate-threads=yes`: `<prefix>-01`, `<prefix>-02`, ...).
pub(crate) fn threads(prefix: &Path) -> Result<Vec<Thread>, BoxError> {
    let dir = prefix.parent().ok_or("no directory")?;
    let stem = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("no file name")?;
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(number) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(stem))
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        // `totals:`, the sum of the file's costs: after a zeroing request,
        // callgrind 3.19's `summary:` line is not the count since then.
        let instructions = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("totals:"))
            .and_then(|v| v.split_whitespace().next())
            .ok_or_else(|| format!("{}: no totals line", path.display()))?
            .parse()?;
        let kind = if number == 1 {
            ThreadKind::Main
        } else if text.contains("baton_exporters::pipeline::batch::Worker")
            || text.contains("GlobalCollector::handle_commands")
        {
            ThreadKind::SpanExport
        } else if text.contains("tokio::runtime::scheduler::multi_thread::worker") {
            ThreadKind::Requests
        } else {
            ThreadKind::Other
        };
        threads.push(Thread {
            number,
            kind,
            instructions,
        });
    }
    threads.sort_by_key(|t| t.number);
    if threads.is_empty() {
        return Err(format!("no callgrind files for {}", prefix.display()).into());
    }
    Ok(threads)
}
