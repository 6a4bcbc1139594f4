//! Rate steps in one run: when each sender acts, and which step a message belongs to.
//!
//! Opening 10,000 connections takes seconds and costs the broker memory that we want to
//! measure once, so one run offers several total rates one after the other. Step `k` spans
//! `[t0 + k·S, t0 + (k+1)·S)` on the run's clock; a message belongs to the step its send
//! time (the one written in its payload header) falls in, so publishers and subscribers
//! attribute it the same way without talking to each other. Pure: times are passed in.

/// The steps of a run, on nanoseconds since the run's epoch.
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub t0_ns: u64,
    pub step_ns: u64,
    /// Total offered rate of each step, per second (connections/s for churn).
    pub rates: Vec<u64>,
    /// How many senders share each total rate (each sends rate / senders per second).
    pub senders: usize,
}

impl StepPlan {
    pub fn steps(&self) -> usize {
        self.rates.len()
    }

    pub fn start_ns(&self, k: usize) -> u64 {
        self.t0_ns + k as u64 * self.step_ns
    }

    /// The step of a message sent at `ts_ns`: `None` before the first step, the last step for
    /// anything sent late (a send due just before the end and delayed by a busy thread).
    pub fn step_at(&self, ts_ns: u64) -> Option<usize> {
        if ts_ns < self.t0_ns || self.rates.is_empty() {
            return None;
        }
        let k = ((ts_ns - self.t0_ns) / self.step_ns.max(1)) as usize;
        Some(k.min(self.steps() - 1))
    }

    /// Nanoseconds between two sends of one sender in step `k`.
    pub fn interval_ns(&self, k: usize) -> f64 {
        self.senders.max(1) as f64 * 1e9 / self.rates[k].max(1) as f64
    }
}

/// One sender's position in the plan: the `j`-th send of step `step`, at
/// `start(step) + (phase + j) · interval(step)`. The phase (0..1) spreads senders evenly
/// over an interval, as real devices that were switched on at different times are.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub step: usize,
    j: u64,
    phase: f64,
}

impl Schedule {
    pub fn new(phase: f64) -> Schedule {
        Schedule {
            step: 0,
            j: 0,
            phase: phase.clamp(0.0, 0.999_999),
        }
    }

    /// When the next send is due (moving on to the next step when this one is over), or
    /// `None` after the last step.
    pub fn due(&mut self, plan: &StepPlan) -> Option<u64> {
        while self.step < plan.steps() {
            let start = plan.start_ns(self.step);
            let at = start as f64 + (self.phase + self.j as f64) * plan.interval_ns(self.step);
            if (at as u64) < start + plan.step_ns {
                return Some(at as u64);
            }
            self.step += 1;
            self.j = 0;
        }
        None
    }

    /// The send [`Schedule::due`] returned was made (or given up).
    pub fn advance(&mut self) {
        self.j += 1;
    }
}

/// A well-spread number in [0, 1) for `i` (splitmix64): each connection's random phase,
/// the same in every run so two brokers see the same offered load.
pub fn unit_hash(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rates: &[u64], senders: usize) -> StepPlan {
        StepPlan {
            t0_ns: 1_000,
            step_ns: 1_000_000_000,
            rates: rates.to_vec(),
            senders,
        }
    }

    #[test]
    fn attribution_by_send_time() {
        let p = plan(&[10, 20, 40], 1);
        assert_eq!(p.step_at(999), None);
        assert_eq!(p.step_at(1_000), Some(0));
        assert_eq!(p.step_at(1_000 + 999_999_999), Some(0));
        assert_eq!(p.step_at(1_000 + 1_000_000_000), Some(1));
        assert_eq!(p.step_at(1_000 + 2_500_000_000), Some(2));
        // Late sends belong to the last step.
        assert_eq!(p.step_at(1_000 + 9_000_000_000), Some(2));
        assert_eq!(p.start_ns(p.steps()), 1_000 + 3_000_000_000);
    }

    #[test]
    fn senders_together_offer_each_steps_total() {
        let p = plan(&[1_000, 4_000], 100);
        let mut per_step = [0u64; 2];
        for s in 0..100 {
            let mut sch = Schedule::new(unit_hash(s));
            while let Some(at) = sch.due(&p) {
                assert!(at >= p.t0_ns && at < p.start_ns(p.steps()));
                assert_eq!(p.step_at(at), Some(sch.step));
                per_step[sch.step] += 1;
                sch.advance();
            }
        }
        // 1,000/s and 4,000/s for 1 s each; each sender's count rounds by at most one.
        assert!((900..=1_100).contains(&per_step[0]), "{per_step:?}");
        assert!((3_900..=4_100).contains(&per_step[1]), "{per_step:?}");
    }

    #[test]
    fn fractional_rate_per_sender() {
        // 3 senders sharing 2/s: each sends every 1.5 s, so once or not at all in a 1 s step.
        let p = plan(&[2], 3);
        let total: usize = (0..3)
            .map(|s| {
                let mut sch = Schedule::new(s as f64 / 3.0);
                let mut n = 0;
                while sch.due(&p).is_some() {
                    sch.advance();
                    n += 1;
                }
                n
            })
            .sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn phases_spread() {
        let xs: Vec<f64> = (0..1000).map(unit_hash).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let low = xs.iter().filter(|&&x| x < 0.5).count();
        assert!((400..600).contains(&low));
    }
}
