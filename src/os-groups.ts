import { readFileSync } from 'node:fs';

/** A group name or numeric gid as a gid, from /etc/group (no process needed). */
export function groupId(group: string): number {
  if (/^[0-9]+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new Error(`socketGroup: there is no group '${group}' in /etc/group`);
}
