// A PLI can be lost or rate-limited: while an output waits for a keyframe, it asks again.

const PLI_UNTIL_KEYFRAME_MS = 300;

/**
 * Asks for a keyframe (now, unless `now` is false) and again every PLI_UNTIL_KEYFRAME_MS
 * until `done()`: the one loop every output uses while it waits for a keyframe. Clear the
 * timer to stop it early.
 */
export function askForKeyframe(request: () => void, done: () => boolean, now = true): NodeJS.Timeout {
  if (now) request();
  const timer = setInterval(() => (done() ? clearInterval(timer) : request()), PLI_UNTIL_KEYFRAME_MS);
  return timer;
}
