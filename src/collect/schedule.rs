//! The collection schedule: when each round is due and which instant it
//! carries.
//!
//! Rounds are due on a grid of the interval in wall-clock time, anchored
//! once, at the first round. A round that starts within [`ON_TIME`] of its
//! tick carries the tick, not the instant it happened to run: the series of
//! a round are then exactly one interval apart, which an XOR chunk stores in
//! one bit per timestamp, and the store and the remote-write destinations
//! hold the same instants with nobody moving a timestamp afterwards. A round
//! that starts later (a busy machine, a previous round overrunning) carries
//! its real instant, as Prometheus's scrape loop does beyond its 2 ms.
//!
//! Invariants:
//! - A round's stamp is within [`ON_TIME`] of the wall clock when the round
//!   started: the grid saves bits, never truth.
//! - The next tick is always after the last round's start: a round that
//!   overran the interval skips the ticks it missed, and the rounds after it
//!   are on the grid again.
//! - The grid moves only when the wall clock steps back by more than an
//!   interval (an administrator, a first NTP sync): it is anchored again at
//!   that instant rather than waiting for the old grid to come back.

use std::time::Duration;

/// How far from its tick a round may start and still carry the tick, in
/// milliseconds (Prometheus's scrape loop uses the same 2 ms).
pub const ON_TIME: i64 = 2;

pub struct Schedule {
    interval_ms: i64,
    /// When the next round is due, in milliseconds since the Unix epoch.
    next_tick: i64,
}

impl Schedule {
    /// A schedule whose first round is due at `now` (since the Unix epoch).
    pub fn new(interval: Duration, now: Duration) -> Schedule {
        Schedule {
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            next_tick: millis(now),
        }
    }

    /// How long from `now` until the next round is due; zero once it is.
    pub fn wait(&mut self, now: Duration) -> Duration {
        if self.next_tick - millis(now) > self.interval_ms {
            // The clock stepped back.
            self.next_tick = millis(now);
        }
        Duration::from_millis(self.next_tick.max(0) as u64).saturating_sub(now)
    }

    /// The timestamp of the round starting at `now`; moves on to the tick
    /// after it.
    pub fn stamp(&mut self, now: Duration) -> i64 {
        let started = millis(now);
        let tick = self.next_tick;
        let late = started - tick;
        let missed = late.max(0) / self.interval_ms;
        self.next_tick = tick + (missed + 1) * self.interval_ms;
        if late.abs() <= ON_TIME {
            tick
        } else {
            started
        }
    }
}

fn millis(since_epoch: Duration) -> i64 {
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn rounds_on_time_carry_their_tick_and_late_ones_their_instant() {
        let mut schedule = Schedule::new(2 * SECOND, at(10_000));
        assert_eq!(schedule.stamp(at(10_000)), 10_000);
        assert_eq!(schedule.wait(at(10_500)), at(1_500));
        // Woken a little late, as timers are: still the tick.
        assert_eq!(schedule.stamp(at(12_002)), 12_000);
        assert_eq!(schedule.stamp(Duration::from_micros(14_001_900)), 14_000);
        // Too late for the tick: its own instant, and the grid goes on.
        assert_eq!(schedule.stamp(at(16_003)), 16_003);
        assert_eq!(schedule.wait(at(16_500)), at(1_500));
        assert_eq!(schedule.stamp(at(18_000)), 18_000);
    }

    #[test]
    fn an_overrun_skips_the_missed_ticks_and_stays_on_the_grid() {
        let mut schedule = Schedule::new(SECOND, at(0));
        assert_eq!(schedule.stamp(at(0)), 0);
        assert_eq!(schedule.stamp(at(3_400)), 3_400);
        assert_eq!(schedule.wait(at(3_500)), at(500));
        assert_eq!(schedule.stamp(at(4_000)), 4_000);
    }

    #[test]
    fn the_grid_is_anchored_again_when_the_clock_steps_back() {
        let mut schedule = Schedule::new(SECOND, at(100_000));
        schedule.stamp(at(100_000));
        assert_eq!(schedule.wait(at(50_300)), Duration::ZERO);
        assert_eq!(schedule.stamp(at(50_300)), 50_300);
        assert_eq!(schedule.wait(at(50_800)), at(500));
        // Woken before the tick (the clock stepped back a little meanwhile):
        // the round still waits for it.
        assert_eq!(schedule.wait(at(51_100)), at(200));
    }
}
