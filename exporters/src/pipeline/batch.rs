//! Baton's batch span processor.
//!
//! Written by hand rather than using `opentelemetry_sdk`'s
//! `BatchSpanProcessor`, whose defaults lose data quietly: its 2,048-span
//! queue drops most of a 20,000-span burst without telling anyone, its
//! `shutdown()` on a `current_thread` runtime deadlocks until its timeout
//! (the tonic exporter needs the caller's runtime, which is blocked waiting
//! for the shutdown) and then loses everything, and it reports `Ok` from
//! `shutdown()` when the collector refused every export.
//!
//! Here the exporter lives on a dedicated thread that owns its own
//! current-thread tokio runtime, so exporting never depends on the caller's
//! runtime (any flavour, or none); `on_end` only ever tries to enqueue; and
//! every span is counted as exported, dropped or failed.
//!
//! The queue is a mutex-guarded deque rather than a channel: a channel wakes
//! its receiver on every send, which put a futex wake and a context switch
//! on the request path for every span ended (measured: most of the
//! per-request overhead). Here `on_end` wakes the export thread only when a
//! full batch is waiting; otherwise the thread wakes on its schedule.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc};

use super::stats::PipelineStats;
use crate::config::Bsp;

/// A batch span processor that never blocks the code ending spans, keeps at
/// most `max_queue_size` spans in memory, counts every span it cannot deliver
/// and reports failures from [`force_flush`](SpanProcessor::force_flush) and
/// [`shutdown`](SpanProcessor::shutdown).
pub struct BatchSpanProcessor {
    queue: Arc<Queue>,
    control: mpsc::UnboundedSender<Control>,
    stats: PipelineStats,
    export_timeout: Duration,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Spans dropped or failed as of the last flush, so that a flush reports
    /// losses since the previous one even when they happened in between.
    lost_at_last_flush: AtomicU64,
}

impl fmt::Debug for BatchSpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSpanProcessor")
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// Requests from the processor to its export thread; each carries the
/// channel on which the thread answers.
enum Control {
    SetResource(Resource),
    Flush(std_mpsc::Sender<OTelSdkResult>),
    Shutdown(Duration, std_mpsc::Sender<OTelSdkResult>),
}

/// The spans ended and not yet exported, shared by the code ending spans and
/// the export thread.
struct Queue {
    waiting: Mutex<Waiting>,
    /// Spans held in all: waiting here plus taken by the export thread and
    /// not yet exported. Bounded by `max`, so memory is bounded whatever the
    /// collector does.
    held: AtomicUsize,
    max: usize,
    batch_size: usize,
    /// Wakes the export thread when a full batch is waiting.
    batch_ready: Notify,
}

struct Waiting {
    spans: VecDeque<SpanData>,
    /// Set when the export thread stops: later spans are dropped (counted).
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding the lock leaves a deque that is still valid.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every waiting span, closing the queue first if asked.
    fn take_all(&self, close: bool) -> VecDeque<SpanData> {
        let mut waiting = self.lock();
        waiting.closed |= close;
        std::mem::take(&mut waiting.spans)
    }

    /// Takes the full batches waiting, leaving the rest for the schedule.
    fn take_full_batches(&self) -> VecDeque<SpanData> {
        let mut waiting = self.lock();
        let full = waiting.spans.len() / self.batch_size * self.batch_size;
        // Copies only the remainder, less than a batch, under the lock.
        let rest = waiting.spans.split_off(full);
        std::mem::replace(&mut waiting.spans, rest)
    }
}

impl BatchSpanProcessor {
    /// Starts the export thread, with its own runtime, for `exporter`.
    ///
    /// The exporter is used only on that thread's runtime; exporters that
    /// need a runtime when they are built (tonic's) should be built with
    /// [`Self::on_runtime`] instead. Fails only if the operating system
    /// refuses a thread or the runtime's resources.
    pub fn new<E: SpanExporter + 'static>(exporter: E, config: &Bsp) -> std::io::Result<Self> {
        Self::on_runtime(runtime()?, exporter, config)
    }

    /// Like [`Self::new`] with a runtime the caller created (a current-thread
    /// one with I/O and time enabled), in whose context the exporter was
    /// built. Start-up never waits for the collector: nothing is sent until
    /// the first batch.
    pub fn on_runtime<E: SpanExporter + 'static>(
        runtime: Runtime,
        exporter: E,
        config: &Bsp,
    ) -> std::io::Result<Self> {
        // tokio's channel panics on 0 or on more than `usize::MAX >> 3`
        // slots; it allocates slots as they fill, so a large bound costs
        // nothing until used.
        let max = config.max_queue_size.max(1);
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting {
                spans: VecDeque::new(),
                closed: false,
            }),
            held: AtomicUsize::new(0),
            max,
            batch_size: config.max_export_batch_size.clamp(1, max),
            batch_ready: Notify::new(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = PipelineStats::new("spans");
        let worker = Worker {
            exporter,
            queue: Arc::clone(&queue),
            control: control_rx,
            stats: stats.clone(),
            schedule_delay: config.schedule_delay,
            export_timeout: config.export_timeout,
        };
        let thread = std::thread::Builder::new()
            .name("baton-span-export".to_owned())
            .spawn(move || runtime.block_on(worker.run()))?;
        Ok(Self {
            queue,
            control,
            stats,
            export_timeout: config.export_timeout,
            thread: Mutex::new(Some(thread)),
            lost_at_last_flush: AtomicU64::new(0),
        })
    }

    /// The processor's counters.
    pub fn stats(&self) -> PipelineStats {
        self.stats.clone()
    }

    /// Sends `request` to the export thread and waits for its answer until
    /// `deadline`; never longer, so a stuck exporter cannot hang the caller.
    fn ask(
        &self,
        request: impl FnOnce(std_mpsc::Sender<OTelSdkResult>) -> Control,
        deadline: Duration,
    ) -> OTelSdkResult {
        let (reply, answer) = std_mpsc::channel();
        if self.control.send(request(reply)).is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match answer.recv_timeout(deadline) {
            Ok(result) => result,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(deadline)),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(OTelSdkError::InternalFailure(
                "span export thread stopped".to_owned(),
            )),
        }
    }
}

impl SpanProcessor for BatchSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let queue = &*self.queue;
        // Reserved before taking the lock, so a full queue costs no lock.
        let held = queue.held.fetch_add(1, Ordering::Relaxed);
        if held >= queue.max {
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_dropped(1);
            return;
        }
        let mut waiting = queue.lock();
        if waiting.closed {
            drop(waiting);
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_dropped(1);
            return;
        }
        waiting.spans.push_back(span);
        let full = waiting.spans.len() == queue.batch_size;
        drop(waiting);
        self.stats.set_queued(held + 1);
        if full {
            queue.batch_ready.notify_one();
        }
    }

    /// Exports everything queued and returns `Err` if that failed, or if any
    /// span was dropped or failed since the previous flush.
    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, self.export_timeout)?;
        let now = self.stats.snapshot();
        let lost = now.dropped + now.failed;
        let before = self.lost_at_last_flush.swap(lost, Ordering::Relaxed);
        if lost > before {
            return Err(OTelSdkError::InternalFailure(format!(
                "{} spans lost since the previous flush ({} dropped, {} failed in all)",
                lost - before,
                now.dropped,
                now.failed
            )));
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let started = Instant::now();
        let result = self.ask(|reply| Control::Shutdown(timeout, reply), timeout);
        // Joined only when the thread already answered, so that a missed
        // deadline is not followed by an unbounded wait.
        if !matches!(result, Err(OTelSdkError::Timeout(_)))
            && let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
            && thread.join().is_err()
        {
            return Err(OTelSdkError::InternalFailure(
                "span export thread panicked".to_owned(),
            ));
        }
        result?;
        let lost = self.stats.snapshot();
        if lost.lost_nothing() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "spans lost during the pipeline's life: {} dropped (queue full), {} failed to export \
                 ({} delivered, shutdown took {:?})",
                lost.dropped,
                lost.failed,
                lost.exported,
                started.elapsed()
            )))
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The thread exits only on shutdown; a send error means it is gone
        // and there is nothing left to configure.
        let _sent = self.control.send(Control::SetResource(resource.clone()));
    }
}

/// The current-thread runtime an export thread drives.
pub(crate) fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The state owned by the export thread.
struct Worker<E> {
    exporter: E,
    queue: Arc<Queue>,
    control: mpsc::UnboundedReceiver<Control>,
    stats: PipelineStats,
    schedule_delay: Duration,
    export_timeout: Duration,
}

impl<E: SpanExporter> Worker<E> {
    async fn run(mut self) {
        let mut next_export = tokio::time::Instant::now() + self.schedule_delay;
        loop {
            tokio::select! {
                // Control first: a flush must not wait behind a busy queue.
                biased;
                request = self.control.recv() => match request {
                    Some(Control::SetResource(resource)) => self.exporter.set_resource(&resource),
                    Some(Control::Flush(reply)) => {
                        let result = self.drain(None).await;
                        let _answered = reply.send(result);
                    }
                    Some(Control::Shutdown(timeout, reply)) => {
                        let deadline = tokio::time::Instant::now() + timeout;
                        let mut result = self.drain(Some(deadline)).await;
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        if let Err(error) = self.exporter.shutdown_with_timeout(left) {
                            result = result.and(Err(error));
                        }
                        let _answered = reply.send(result);
                        return;
                    }
                    // The processor was dropped without shutdown: deliver
                    // what is held, with no one left to tell.
                    None => {
                        let _result = self.drain(Some(tokio::time::Instant::now() + self.export_timeout)).await;
                        return;
                    }
                },
                () = self.queue.batch_ready.notified() => {
                    let full = self.queue.take_full_batches();
                    let _result = self.export_all(full, None).await;
                    next_export = tokio::time::Instant::now() + self.schedule_delay;
                }
                () = tokio::time::sleep_until(next_export) => {
                    let _result = self.drain(None).await;
                    next_export = tokio::time::Instant::now() + self.schedule_delay;
                }
            }
        }
    }

    /// Exports every span waiting now. With a `deadline` (shutdown) the queue
    /// is closed first, so that spans ended meanwhile are refused and counted
    /// as dropped rather than left unaccounted.
    async fn drain(&mut self, deadline: Option<tokio::time::Instant>) -> OTelSdkResult {
        let pending = self.queue.take_all(deadline.is_some());
        self.export_all(pending, deadline).await
    }

    /// Exports `pending` batch by batch; what is not exported when `deadline`
    /// passes is counted as failed.
    async fn export_all(
        &mut self,
        mut pending: VecDeque<SpanData>,
        deadline: Option<tokio::time::Instant>,
    ) -> OTelSdkResult {
        let mut result = Ok(());
        while !pending.is_empty() {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let error = OTelSdkError::Timeout(self.export_timeout);
                self.settle(pending.len());
                self.stats.add_failed(pending.len(), &error);
                return Err(error);
            }
            let size = pending.len().min(self.queue.batch_size);
            let batch: Vec<SpanData> = pending.drain(..size).collect();
            if let Err(error) = self.export(batch, deadline).await {
                result = Err(error);
            }
        }
        result
    }

    /// Exports `batch` within the export timeout, or less if `deadline`
    /// comes first, and counts the outcome.
    async fn export(
        &mut self,
        batch: Vec<SpanData>,
        deadline: Option<tokio::time::Instant>,
    ) -> OTelSdkResult {
        let count = batch.len();
        let mut limit = self.export_timeout;
        if let Some(deadline) = deadline {
            limit = limit.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        }
        let result = match tokio::time::timeout(limit, self.exporter.export(batch)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(OTelSdkError::Timeout(limit)),
        };
        self.settle(count);
        match &result {
            Ok(()) => self.stats.add_exported(count),
            Err(error) => self.stats.add_failed(count, error),
        }
        result
    }

    /// Releases `count` spans' room in the queue.
    fn settle(&self, count: usize) {
        let held = self.queue.held.fetch_sub(count, Ordering::Relaxed) - count;
        self.stats.set_queued(held);
    }
}
