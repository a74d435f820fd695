//! The background scavenger's pacing: Go's proportional-integral controller
//! that holds the scavenger at a set share of the CPU time (Go's
//! `piController` and `scavengerState.sleep`), with the share and the
//! longest sleep from [`Config`](crate::Config).
//!
//! The scavenger works for a short while (at least 1 ms), then sleeps for
//! `worked / sleep_ratio`, at most the longest sleep. After each sleep the
//! controller compares the CPU fraction actually used, `worked / ((slept +
//! worked) * procs)`, against the set point and adjusts `sleep_ratio`. Go
//! starts at a ratio of 0.001 (a first sleep a thousand times the first
//! burst, about a second), which made the time to return memory after a
//! drop erratic; this pacer starts at the ratio the set point implies. All
//! times are nanoseconds in `f64`, as in Go.

/// A PI controller with anti-windup, output clamped to `[min, max]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PiController {
    /// Proportional gain.
    kp: f64,
    /// Integral time constant (ns).
    ti: f64,
    /// Anti-windup tracking time constant (ns).
    tt: f64,
    /// Output bounds.
    min: f64,
    max: f64,
    /// The integral term.
    err_integral: f64,
}

impl PiController {
    /// Go's scavenger tuning: kp = 0.3375, ti = 3.2e6 ns, tt = 1e9 ns,
    /// output in [0.001, 1000].
    pub(crate) const fn scavenger() -> Self {
        PiController {
            kp: 0.3375,
            ti: 3.2e6,
            tt: 1e9,
            min: 0.001,
            max: 1000.0,
            err_integral: 0.0,
        }
    }

    /// The next output for `input` against `setpoint` over `period` ns, or
    /// `None` (and a reset) if the arithmetic overflowed.
    pub(crate) fn next(&mut self, input: f64, setpoint: f64, period: f64) -> Option<f64> {
        let err = setpoint - input;
        let raw = self.kp * err + self.err_integral;
        if !raw.is_finite() {
            self.err_integral = 0.0;
            return None;
        }
        let output = raw.clamp(self.min, self.max);
        if self.ti != 0.0 && self.tt != 0.0 {
            // The second term bleeds off the integral while the output is
            // clamped, so it does not wind up during long saturation.
            self.err_integral +=
                (self.kp * period / self.ti) * err + (period / self.tt) * (output - raw);
            if !self.err_integral.is_finite() {
                self.err_integral = 0.0;
                return None;
            }
        }
        Some(output)
    }
}

/// The least work the scavenger does between sleeps (Go's
/// `minScavWorkTime`), in ns.
pub(crate) const MIN_WORK_NS: f64 = 1e6;
/// How long the controller rests after a failure, in ns.
const COOLDOWN_NS: f64 = 5e9;

/// The scavenger's sleep pacing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacer {
    controller: PiController,
    sleep_ratio: f64,
    /// The ratio the set point implies: the start, and the fallback after
    /// a controller failure.
    start_ratio: f64,
    /// The CPU share aimed for, as a fraction of all CPUs.
    setpoint: f64,
    max_sleep: f64,
    cooldown: f64,
    procs: f64,
}

impl Pacer {
    /// A pacer for a machine with `procs` CPUs that aims at `cpu` of one
    /// CPU (in `(0, 1]`) and sleeps at most `max_sleep` ns.
    pub(crate) fn new(procs: usize, cpu: f64, max_sleep: f64) -> Self {
        let procs = procs.max(1) as f64;
        let cpu = cpu.clamp(1e-6, 1.0);
        // Work `w` then sleep `w / r` uses `r / (1 + r)` of one CPU.
        let start_ratio = if cpu >= 1.0 {
            1000.0
        } else {
            (cpu / (1.0 - cpu)).clamp(0.001, 1000.0)
        };
        Pacer {
            controller: PiController::scavenger(),
            sleep_ratio: start_ratio,
            start_ratio,
            setpoint: cpu / procs,
            max_sleep,
            cooldown: 0.0,
            procs,
        }
    }

    /// The work time to account for `worked` ns of work (at least
    /// [`MIN_WORK_NS`]) and how long to sleep after it, in ns.
    pub(crate) fn plan(&self, worked: f64) -> (f64, f64) {
        let worked = worked.max(MIN_WORK_NS);
        (worked, (worked / self.sleep_ratio).min(self.max_sleep))
    }

    /// Feeds back one work/sleep cycle: `worked` as returned by
    /// [`plan`](Self::plan), `slept` as measured.
    pub(crate) fn update(&mut self, worked: f64, slept: f64) {
        if self.cooldown > 0.0 {
            self.cooldown -= slept + worked;
            return;
        }
        let period = slept + worked;
        let used = worked / (period * self.procs);
        match self.controller.next(used, self.setpoint, period) {
            Some(ratio) => self.sleep_ratio = ratio,
            None => {
                self.sleep_ratio = self.start_ratio;
                self.cooldown = COOLDOWN_NS;
            }
        }
    }

    /// The current ratio of work time to sleep time.
    #[cfg(test)]
    pub(crate) fn sleep_ratio(&self) -> f64 {
        self.sleep_ratio
    }
}
