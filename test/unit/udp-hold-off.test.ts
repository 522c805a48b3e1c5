/** How long a UDP peer is held off after failed opens: 1 s, doubling per failure in a row, at most 16 s. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOLD_OFF_FIRST_MS, HOLD_OFF_MAX_MS, holdOffMs } from '../../src/tunnel/udp-relay.js';

describe('UDP hold-off', () => {
  it('doubles from the first hold-off to the cap, and stays there however many failures follow', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(holdOffMs), [1000, 2000, 4000, 8000, 16_000, 16_000, 16_000]);
    assert.equal(holdOffMs(1_000_000), HOLD_OFF_MAX_MS);
    assert.equal(holdOffMs(0), HOLD_OFF_FIRST_MS, 'never shorter than the first');
  });
});
