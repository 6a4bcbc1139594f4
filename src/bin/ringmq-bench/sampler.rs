//! The broker's memory and CPU over a run: /proc/PID sampled on a thread
//! every 100 ms, so a peak between two phases is not missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::stats::{self, ProcSample};

/// Samples the broker's /proc every 100 ms on a thread: first RSS, highest
/// RSS, last sample (the last one read while the process still existed).
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SamplerState>>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct SamplerState {
    first_kb: Option<u64>,
    peak_kb: Option<u64>,
    last: Option<ProcSample>,
}

impl SamplerState {
    fn add(&mut self, s: ProcSample) {
        self.first_kb.get_or_insert(s.rss_kb);
        self.peak_kb = Some(self.peak_kb.unwrap_or(0).max(s.rss_kb));
        self.last = Some(s);
    }
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        let (s, st) = (stop.clone(), state.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(x) = live_sample(pid) {
                    st.lock().unwrap_or_else(|e| e.into_inner()).add(x);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            pid,
            stop,
            state,
            handle: Some(handle),
        }
    }

    /// A sample now (also counted towards the peak).
    pub fn now(&self) -> Option<ProcSample> {
        let s = live_sample(self.pid)?;
        self.state.lock().unwrap_or_else(|e| e.into_inner()).add(s);
        Some(s)
    }

    /// (baseline RSS kB, peak RSS kB, last sample).
    pub fn finish(&self) -> (Option<u64>, Option<u64>, Option<ProcSample>) {
        self.now();
        self.stop.store(true, Ordering::Relaxed);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.first_kb, st.peak_kb, st.last)
    }
}

/// A sample of a process that still runs: a zombie (dead, not yet reaped)
/// still has /proc/PID/stat, but no memory.
pub fn live_sample(pid: u32) -> Option<ProcSample> {
    stats::sample(pid).filter(|s| s.rss_kb > 0)
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
