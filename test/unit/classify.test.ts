import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify, classifyNative, classifySpawnError } from '../../src/executor/classify.js';
import type { Op } from '../../src/executor/ops.js';

/** Recorded from this machine's iproute2 6.1 by scripts/record-stderr.ts. */
const stderr = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'stderr', `${name}.txt`), 'utf8');
const op: Op = { kind: 'netns.add', ns: 'blue' };

describe('classify', () => {
  it.each([
    ['netns-add-exists', 'NAMESPACE_EXISTS'],
    ['netns-del-missing', 'NAMESPACE_NOT_FOUND'],
    ['netns-open-missing', 'NAMESPACE_NOT_FOUND'],
    ['netns-set-missing', 'NAMESPACE_NOT_FOUND'],
    ['netns-exec-missing', 'NAMESPACE_NOT_FOUND'],
    ['tc-open-missing', 'NAMESPACE_NOT_FOUND'],
    ['netns-exec-tool-missing', 'TOOL_MISSING'],
    ['eperm-netns-add', 'PRIVILEGE_REQUIRED'],
    ['eacces-netns-del', 'PRIVILEGE_REQUIRED'],
    ['eperm-setns', 'PRIVILEGE_REQUIRED'],
    ['eperm-netns-set', 'PRIVILEGE_REQUIRED'],
    // Not namespace errors: a link that exists is not a namespace that exists.
    ['link-exists', 'INTERNAL'],
    ['link-not-found', 'INTERNAL'],
    ['link-kind-unknown', 'INTERNAL'],
    ['qdisc-kind-unknown', 'INTERNAL'],
    ['netns-set-has-nsid', 'INTERNAL'],
    ['batch-exit', 'INTERNAL'],
  ])('classifies %s as %s', (name, code) => {
    expect(classify(stderr(name), 1, op).code).toBe(code);
  });

  it('names the namespace in the detail and keeps stderr out of it', () => {
    const err = classify(stderr('netns-add-exists'), 1, op);
    expect(err.detail).toBe('namespace "blue" already exists');
    expect(err.cause).toBe(stderr('netns-add-exists').trim());
  });

  it('names the missing tool, not its path', () => {
    expect(classify(stderr('netns-exec-tool-missing'), 255, op).detail).toBe('nnx-no-such-tool is not installed');
  });

  it('puts unknown stderr in the cause of an INTERNAL error, not in the detail', () => {
    const err = classify(stderr('link-kind-unknown'), 2, op);
    expect(err.detail).toBe('netns.add failed (exit status 2)');
    expect(err.cause).toBe('Error: Unknown device type.');
  });

  it('omits the exit status of a failed batch line, which has none', () => {
    expect(classify('Error: x', null, op).detail).toBe('netns.add failed');
  });
});

describe('classifyNative', () => {
  const errno = (code: string): Error => Object.assign(new Error(`open namespace: ${code}`), { code });
  const op: Op = { kind: 'netns.loopbackUp', ns: 'blue' };

  it.each([
    ['ENOENT', 'NAMESPACE_NOT_FOUND'],
    ['EEXIST', 'NAMESPACE_EXISTS'],
    ['EPERM', 'PRIVILEGE_REQUIRED'],
    ['EACCES', 'PRIVILEGE_REQUIRED'],
    ['ETIMEDOUT', 'EXECUTOR_TIMEOUT'],
    ['EINTR', 'EXECUTOR_BUSY'],
    ['ENODEV', 'INTERNAL'],
  ])('maps %s to %s', (code, expected) => {
    const err = classifyNative(errno(code), op);
    expect(err.code).toBe(expected);
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('maps something that is not an errno error to INTERNAL', () => {
    expect(classifyNative('boom', op).code).toBe('INTERNAL');
  });

  it('answers NAMESPACE_NOT_FOUND when setns finds the name is no longer a namespace (deleted meanwhile), INTERNAL for another EINVAL', () => {
    expect(classifyNative(Object.assign(new Error('setns: Invalid argument'), { code: 'EINVAL' }), op).code).toBe('NAMESPACE_NOT_FOUND');
    expect(classifyNative(Object.assign(new Error('nlDump request: Invalid argument'), { code: 'EINVAL' }), op).code).toBe('INTERNAL');
  });
});

describe('classifyNative of netnsAdd (native/netns.c) errors', () => {
  const add: Op = { kind: 'netns.add', ns: 'blue' };
  // The messages are the addon's: "<step>: <strerror>", .code the errno's name.
  const err = (message: string, code: string): Error => Object.assign(new Error(message), { code });

  it.each([
    ['the name is taken (O_EXCL)', 'create namespace file: File exists', 'EEXIST', 'NAMESPACE_EXISTS'],
    ['not root: mount refused', 'mount --make-shared netns directory: Operation not permitted', 'EPERM', 'PRIVILEGE_REQUIRED'],
    ['not root: unshare refused', 'unshare(CLONE_NEWNET): Operation not permitted', 'EPERM', 'PRIVILEGE_REQUIRED'],
    ['not root: the directory refused', 'create namespace file: Permission denied', 'EACCES', 'PRIVILEGE_REQUIRED'],
    ['no directory above /run/netns (not a missing namespace)', 'mkdir netns directory: No such file or directory', 'ENOENT', 'INTERNAL'],
    ['out of namespaces', 'unshare(CLONE_NEWNET): No space left on device', 'ENOSPC', 'INTERNAL'],
  ])('answers %s with %s', (_what, message, code, expected) => {
    const e = classifyNative(err(message, code), add);
    expect(e.code).toBe(expected);
    expect(e.cause).toBeInstanceOf(Error);
  });

  it('names the namespace when it exists, as the batch line\'s classification does', () => {
    const native = classifyNative(err('create namespace file: File exists', 'EEXIST'), add);
    const batch = classify('Cannot create namespace file "/run/netns/blue": File exists', null, add);
    expect(native.code).toBe(batch.code);
    expect(native.detail).toBe(batch.detail);
  });
});

describe('classifySpawnError', () => {
  it('answers TOOL_MISSING when the tool is not there', () => {
    const err = classifySpawnError({ code: 'ENOENT' }, '/usr/sbin/nft');
    expect(err.code).toBe('TOOL_MISSING');
    expect(err.detail).toContain('nft is not installed');
  });

  it('answers PRIVILEGE_REQUIRED when it may not be executed, INTERNAL otherwise', () => {
    expect(classifySpawnError({ code: 'EACCES' }, '/usr/sbin/ip').code).toBe('PRIVILEGE_REQUIRED');
    expect(classifySpawnError({ code: 'E2BIG' }, '/usr/sbin/ip').code).toBe('INTERNAL');
  });
});
