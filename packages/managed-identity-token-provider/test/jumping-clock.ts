/**
 * A clock that jumps, for walking a token's lifetime (hours) in seconds of real time. MSAL reads the
 * clock through `new Date()` and mock-imds through Date.now(), so Date itself is replaced: both read
 * real time plus the offset. Install it only in a process of its own (a test file under node --test,
 * a script), and before anything whose behaviour depends on the clock.
 */
export interface JumpingClock {
  /** Moves the clock to `hours` (any fraction) after real time; 0 is real time. */
  jumpToHours: (hours: number) => void
  /** Puts the real Date back. */
  restore: () => void
}

export function installJumpingClock (): JumpingClock {
  let offsetMs = 0
  const RealDate = Date
  const realNow = RealDate.now.bind(RealDate)
  class JumpingDate extends RealDate {
    constructor (...args: unknown[]) {
      if (args.length === 0) super(realNow() + offsetMs)
      else super(...(args as [string | number | Date]))
    }

    static override now () { return realNow() + offsetMs }
  }
  globalThis.Date = JumpingDate as DateConstructor
  return {
    jumpToHours: (hours) => { offsetMs = hours * 3_600_000 },
    restore: () => { globalThis.Date = RealDate }
  }
}
