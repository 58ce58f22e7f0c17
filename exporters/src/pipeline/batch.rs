//! Baton's batch processors for spans and log records.
//!
//! Written by hand rather than using `opentelemetry_sdk`'s
//! `BatchSpanProcessor` and `BatchLogProcessor`, whose defaults lose data
//! quietly: the span processor's 2,048-span queue drops most of a
//! 20,000-span burst without telling anyone, its `shutdown()` on a
//! `current_thread` runtime deadlocks until its timeout (the tonic exporter
//! needs the caller's runtime, which is blocked waiting for the shutdown)
//! with nothing delivered by then, and it reports `Ok` from `shutdown()`
//! when the collector refused every export; the log processor's drops are
//! counted nowhere Baton can read.
//!
//! One generic [`BatchProcessor`] serves both signals, so spans and log
//! records get the same guarantees: the exporter lives on a dedicated thread
//! that owns its own current-thread tokio runtime, so exporting never
//! depends on the caller's runtime (any flavour, or none); recording an item
//! only ever tries to enqueue; and every item is counted as exported,
//! dropped or failed.
//!
//! The queue is a mutex-guarded deque rather than a channel: a channel wakes
//! its receiver on every send, which put a futex wake and a context switch
//! on the request path for every span ended (measured: most of the
//! per-request overhead). Here recording wakes the export thread only when a
//! full batch is waiting; otherwise the thread wakes on its schedule.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc};

use super::size::{self, Item};
use super::stats::PipelineStats;
use crate::config::{Batch, SpanLimits};

/// Baton's batch span processor: see [`BatchProcessor`].
pub type BatchSpanProcessor = BatchProcessor<SpanData>;

/// Baton's batch log processor: see [`BatchProcessor`]. A log record is
/// queued with its scope, both cloned, since the logger lends them only for
/// the duration of `emit`.
pub type BatchLogProcessor = BatchProcessor<(SdkLogRecord, InstrumentationScope)>;

impl SpanProcessor for BatchSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            let limit = self.value_length_limit;
            self.push(|| {
                let mut span = span;
                size::truncate_span(&mut span, limit);
                span
            });
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.shut_down(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.configure(resource);
    }
}

impl LogProcessor for BatchLogProcessor {
    fn emit(&self, record: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        // Cloned only once room is reserved: a full queue costs no copy.
        self.push(|| (record.clone(), instrumentation.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.shut_down(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.configure(resource);
    }
}

/// What the export thread needs from the exporter of one signal.
/// Implemented for every [`SpanExporter`] (items: [`SpanData`]) and every
/// [`LogExporter`] (items: a log record with its scope).
pub trait BatchExporter<T: Item>: Send + 'static {
    /// The signal's name in metric names, warnings and the thread's name.
    const SIGNAL: &'static str;
    /// What the items are called in error messages.
    const ITEMS: &'static str;

    /// Exports one batch.
    fn export(&self, batch: Vec<T>) -> impl Future<Output = OTelSdkResult> + Send;
    /// Sets the resource the exporter attaches to what it sends.
    fn set_resource(&mut self, resource: &Resource);
    /// Releases the exporter's connections.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult;
}

impl<E: SpanExporter + 'static> BatchExporter<SpanData> for E {
    const SIGNAL: &'static str = "spans";
    const ITEMS: &'static str = "spans";

    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        SpanExporter::export(self, batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        SpanExporter::set_resource(self, resource);
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SpanExporter::shutdown_with_timeout(self, timeout)
    }
}

impl<E: LogExporter + 'static> BatchExporter<(SdkLogRecord, InstrumentationScope)> for E {
    const SIGNAL: &'static str = "logs";
    const ITEMS: &'static str = "log records";

    async fn export(&self, batch: Vec<(SdkLogRecord, InstrumentationScope)>) -> OTelSdkResult {
        let borrowed: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch
            .iter()
            .map(|(record, scope)| (record, scope))
            .collect();
        LogExporter::export(self, LogBatch::new(&borrowed)).await
    }

    fn set_resource(&mut self, resource: &Resource) {
        LogExporter::set_resource(self, resource);
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        LogExporter::shutdown_with_timeout(self, timeout)
    }
}

/// A batch processor that never blocks the code recording spans or log
/// records, keeps at most `max_queue_size` of them and `max_queue_bytes` of
/// their estimated size in memory, sends no request over
/// `max_request_bytes`, counts every one it cannot deliver and reports
/// failures from `force_flush` (losses since the previous flush) and
/// `shutdown` (losses during its whole life).
///
/// A span processor also cuts string attribute values to the span limits'
/// length (see [`SpanLimits`]) before queueing a span.
pub struct BatchProcessor<T> {
    queue: Arc<Queue<T>>,
    control: mpsc::UnboundedSender<Control>,
    stats: PipelineStats,
    /// What one item is called in error messages.
    items: &'static str,
    export_timeout: Duration,
    /// The attribute value length limit, in characters (spans only).
    value_length_limit: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Items dropped or failed as of the last flush, so that a flush reports
    /// losses since the previous one even when they happened in between.
    lost_at_last_flush: AtomicU64,
}

impl<T> fmt::Debug for BatchProcessor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
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

/// An item with its estimated size, computed once when it is queued.
struct Queued<T> {
    item: T,
    cost: usize,
}

/// The items recorded and not yet exported, shared by the code recording
/// them and the export thread.
struct Queue<T> {
    waiting: Mutex<Waiting<T>>,
    /// Items held in all: waiting here plus taken by the export thread and
    /// not yet exported. Bounded by `max`, so memory is bounded whatever the
    /// collector does.
    held: AtomicUsize,
    max: usize,
    /// The estimated bytes of the items held, bounded by `max_bytes`: items
    /// carrying large attributes would otherwise take gigabytes before
    /// reaching `max`.
    held_bytes: AtomicUsize,
    max_bytes: usize,
    /// The largest request the receiver accepts.
    max_request: usize,
    /// What each request spends on the resource and the messages around
    /// the items; set with the resource.
    envelope: AtomicUsize,
    batch_size: usize,
    /// Wakes the export thread when a full batch is waiting.
    batch_ready: Notify,
}

struct Waiting<T> {
    items: VecDeque<Queued<T>>,
    /// The estimated bytes of `items`.
    bytes: usize,
    /// An empty deque with room, given back by the export thread: what
    /// `items` becomes when the thread takes them, so that recording the next
    /// batch does not regrow a deque from nothing, reallocating and copying
    /// every item held so far, under the lock.
    spare: VecDeque<Queued<T>>,
    /// Set when the export thread stops: later items are dropped (counted).
    closed: bool,
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, Waiting<T>> {
        // A panic while holding the lock leaves a deque that is still valid.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes one request may spend on items.
    fn request_budget(&self) -> usize {
        self.max_request
            .saturating_sub(self.envelope.load(Ordering::Relaxed))
    }

    /// Takes every waiting item, closing the queue first if asked.
    fn take_all(&self, close: bool) -> VecDeque<Queued<T>> {
        let mut waiting = self.lock();
        waiting.closed |= close;
        waiting.bytes = 0;
        let spare = std::mem::take(&mut waiting.spare);
        std::mem::replace(&mut waiting.items, spare)
    }

    /// Takes the full batches waiting (all of them once they fill a request
    /// in bytes), leaving the rest for the schedule.
    fn take_full_batches(&self) -> VecDeque<Queued<T>> {
        let mut waiting = self.lock();
        if waiting.bytes >= self.request_budget() {
            waiting.bytes = 0;
            let spare = std::mem::take(&mut waiting.spare);
            return std::mem::replace(&mut waiting.items, spare);
        }
        let full = waiting.items.len() / self.batch_size * self.batch_size;
        // Moves only the remainder, less than a batch, under the lock.
        let mut rest = std::mem::take(&mut waiting.spare);
        rest.extend(waiting.items.drain(full..));
        waiting.bytes = rest.iter().map(|q| q.cost).sum();
        std::mem::replace(&mut waiting.items, rest)
    }

    /// Keeps `emptied` (exported) as the next spare deque, unless it grew
    /// past two batches in a burst: that memory is given back.
    fn recycle(&self, emptied: VecDeque<Queued<T>>) {
        if emptied.is_empty() && emptied.capacity() <= 2 * self.batch_size {
            let mut waiting = self.lock();
            if waiting.spare.capacity() < emptied.capacity() {
                waiting.spare = emptied;
            }
        }
    }
}

impl<T: Item> BatchProcessor<T> {
    /// Starts the export thread, with its own runtime, for `exporter`.
    ///
    /// The exporter is used only on that thread's runtime; exporters that
    /// need a runtime when they are built (tonic's) should be built with
    /// [`Self::on_runtime`] instead. Fails only if the operating system
    /// refuses a thread or the runtime's resources.
    pub fn new<E: BatchExporter<T>>(exporter: E, config: &Batch) -> std::io::Result<Self> {
        Self::on_runtime(runtime()?, exporter, config)
    }

    /// Like [`Self::new`] with a runtime the caller created (a current-thread
    /// one with I/O and time enabled), in whose context the exporter was
    /// built. Start-up never waits for the collector: nothing is sent until
    /// the first batch.
    pub fn on_runtime<E: BatchExporter<T>>(
        runtime: Runtime,
        exporter: E,
        config: &Batch,
    ) -> std::io::Result<Self> {
        // The deque grows as it fills, so a large bound costs nothing until
        // used; 0 would refuse everything.
        let max = config.max_queue_size.max(1);
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting {
                items: VecDeque::new(),
                bytes: 0,
                spare: VecDeque::new(),
                closed: false,
            }),
            held: AtomicUsize::new(0),
            max,
            held_bytes: AtomicUsize::new(0),
            max_bytes: config.max_queue_bytes,
            max_request: config.max_request_bytes,
            envelope: AtomicUsize::new(size::resource(&Resource::builder_empty().build())),
            batch_size: config.max_export_batch_size.clamp(1, max),
            batch_ready: Notify::new(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = PipelineStats::new(E::SIGNAL);
        let worker = Worker {
            exporter,
            queue: Arc::clone(&queue),
            control: control_rx,
            stats: stats.clone(),
            schedule_delay: config.schedule_delay,
            export_timeout: config.export_timeout,
        };
        let thread = std::thread::Builder::new()
            .name(format!("baton-{}-export", E::SIGNAL))
            .spawn(move || runtime.block_on(worker.run()))?;
        Ok(Self {
            queue,
            control,
            stats,
            items: E::ITEMS,
            export_timeout: config.export_timeout,
            value_length_limit: SpanLimits::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT,
            thread: Mutex::new(Some(thread)),
            lost_at_last_flush: AtomicU64::new(0),
        })
    }

    /// The processor's counters.
    pub fn stats(&self) -> PipelineStats {
        self.stats.clone()
    }

    /// Enqueues the item `make` returns, or counts it as dropped: without
    /// calling `make` if the queue is full or closed, after if the item would
    /// overflow the queue's bytes or is too large for any request.
    fn push(&self, make: impl FnOnce() -> T) {
        let queue = &*self.queue;
        // Reserved before taking the lock, so a full queue costs no lock.
        let held = queue.held.fetch_add(1, Ordering::Relaxed);
        if held >= queue.max {
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_dropped(1);
            return;
        }
        let item = make();
        let cost = item.cost();
        let budget = queue.request_budget();
        if cost > budget {
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_oversized(1, cost, queue.max_request);
            return;
        }
        let held_bytes = queue.held_bytes.fetch_add(cost, Ordering::Relaxed) + cost;
        if held_bytes > queue.max_bytes {
            queue.held_bytes.fetch_sub(cost, Ordering::Relaxed);
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_dropped(1);
            return;
        }
        let mut waiting = queue.lock();
        if waiting.closed {
            drop(waiting);
            queue.held_bytes.fetch_sub(cost, Ordering::Relaxed);
            queue.held.fetch_sub(1, Ordering::Relaxed);
            self.stats.add_dropped(1);
            return;
        }
        waiting.items.push_back(Queued { item, cost });
        let before = waiting.bytes;
        waiting.bytes += cost;
        // Woken once per full batch: by count, or by bytes when this item
        // makes the waiting ones fill a request.
        let full =
            waiting.items.len() == queue.batch_size || (before < budget && waiting.bytes >= budget);
        drop(waiting);
        self.stats.set_queued(held + 1);
        self.stats.set_queued_bytes(held_bytes);
        if full {
            queue.batch_ready.notify_one();
        }
    }
}

impl BatchSpanProcessor {
    /// Applies `limits` to the spans queued from now on (by default,
    /// [`SpanLimits::default`]).
    #[must_use]
    pub fn with_span_limits(mut self, limits: &SpanLimits) -> Self {
        self.value_length_limit = limits.attribute_value_length;
        self
    }
}

impl<T> BatchProcessor<T> {
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
                format!("{} export thread stopped", self.items),
            )),
        }
    }

    /// Exports everything queued and returns `Err` if that failed, or if any
    /// item was dropped or failed since the previous flush.
    fn flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, self.export_timeout)?;
        let now = self.stats.snapshot();
        let lost = now.dropped + now.failed;
        let before = self.lost_at_last_flush.swap(lost, Ordering::Relaxed);
        if lost > before {
            return Err(OTelSdkError::InternalFailure(format!(
                "{} {} lost since the previous flush ({} dropped, {} failed in all)",
                lost - before,
                self.items,
                now.dropped,
                now.failed
            )));
        }
        Ok(())
    }

    /// Exports what is held and stops the export thread within `timeout`;
    /// `Err` if anything was lost during the processor's life.
    fn shut_down(&self, timeout: Duration) -> OTelSdkResult {
        let started = Instant::now();
        let result = self.ask(|reply| Control::Shutdown(timeout, reply), timeout);
        // Joined only when the thread already answered, so that a missed
        // deadline is not followed by an unbounded wait.
        if !matches!(result, Err(OTelSdkError::Timeout(_)))
            && let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
            && thread.join().is_err()
        {
            return Err(OTelSdkError::InternalFailure(format!(
                "{} export thread panicked",
                self.items
            )));
        }
        result?;
        let lost = self.stats.snapshot();
        if lost.lost_nothing() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "{} lost during the pipeline's life: {} dropped (queue full or oversized: {}), \
                 {} failed to export ({} delivered, shutdown took {:?})",
                self.items,
                lost.dropped,
                lost.oversized,
                lost.failed,
                lost.exported,
                started.elapsed()
            )))
        }
    }

    fn configure(&self, resource: &Resource) {
        self.queue
            .envelope
            .store(size::resource(resource), Ordering::Relaxed);
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
struct Worker<T, E> {
    exporter: E,
    queue: Arc<Queue<T>>,
    control: mpsc::UnboundedReceiver<Control>,
    stats: PipelineStats,
    schedule_delay: Duration,
    export_timeout: Duration,
}

impl<T: Item, E: BatchExporter<T>> Worker<T, E> {
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
                        // Done a little early, so that the answer, with
                        // every item counted, reaches the caller before it
                        // stops waiting.
                        let margin = (timeout / 10).min(Duration::from_millis(100));
                        let deadline = tokio::time::Instant::now() + timeout - margin;
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

    /// Exports every item waiting now. With a `deadline` (shutdown) the queue
    /// is closed first, so that items recorded meanwhile are refused and counted
    /// as dropped rather than left unaccounted.
    async fn drain(&mut self, deadline: Option<tokio::time::Instant>) -> OTelSdkResult {
        let pending = self.queue.take_all(deadline.is_some());
        self.export_all(pending, deadline).await
    }

    /// Exports `pending` batch by batch, each cut at the batch size or when
    /// the next item would take its request past the receiver's limit; what
    /// is not exported when `deadline` passes is counted as failed.
    async fn export_all(
        &mut self,
        mut pending: VecDeque<Queued<T>>,
        deadline: Option<tokio::time::Instant>,
    ) -> OTelSdkResult {
        let mut result = Ok(());
        while !pending.is_empty() {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let error = OTelSdkError::Timeout(self.export_timeout);
                let bytes = pending.iter().map(|q| q.cost).sum();
                self.settle(pending.len(), bytes);
                self.stats.add_failed(pending.len(), &error);
                return Err(error);
            }
            let budget = self.queue.request_budget();
            let mut batch = Vec::with_capacity(pending.len().min(self.queue.batch_size));
            let mut bytes = 0;
            while batch.len() < self.queue.batch_size
                && let Some(next) = pending.front()
                // The first item always goes: each fitted a request alone
                // when it was queued.
                && (batch.is_empty() || bytes + next.cost <= budget)
                && let Some(next) = pending.pop_front()
            {
                bytes += next.cost;
                batch.push(next.item);
            }
            if let Err(error) = self.export(batch, bytes, deadline).await {
                result = Err(error);
            }
        }
        self.queue.recycle(pending);
        result
    }

    /// Exports `batch` (of `bytes` estimated) within the export timeout, or
    /// less if `deadline` comes first, and counts the outcome.
    async fn export(
        &mut self,
        batch: Vec<T>,
        bytes: usize,
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
        self.settle(count, bytes);
        match &result {
            Ok(()) => self.stats.add_exported(count),
            Err(error) => self.stats.add_failed(count, error),
        }
        result
    }

    /// Releases `count` items' room, `bytes` of it, in the queue.
    fn settle(&self, count: usize, bytes: usize) {
        let held = self.queue.held.fetch_sub(count, Ordering::Relaxed) - count;
        let held_bytes = self.queue.held_bytes.fetch_sub(bytes, Ordering::Relaxed) - bytes;
        self.stats.set_queued(held);
        self.stats.set_queued_bytes(held_bytes);
    }
}
