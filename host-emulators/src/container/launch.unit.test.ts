import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withHugePages } from './launch.ts';

describe("the emulated CT's glibc tunables", () => {
  it('given none, when a CT starts, then malloc advises huge pages', () => {
    assert.equal(withHugePages(undefined), 'glibc.malloc.hugetlb=1');
    assert.equal(withHugePages(''), 'glibc.malloc.hugetlb=1');
  });

  it("given the caller's own tunables, when a CT starts, then they are kept beside it", () => {
    assert.equal(
      withHugePages('glibc.malloc.arena_max=2:glibc.pthread.rseq=0'),
      'glibc.malloc.arena_max=2:glibc.pthread.rseq=0:glibc.malloc.hugetlb=1',
    );
  });

  it('given another hugetlb setting, when a CT starts, then it is replaced, not doubled', () => {
    assert.equal(
      withHugePages('glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2'),
      'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1',
    );
  });
});
