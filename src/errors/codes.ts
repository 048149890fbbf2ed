/**
 * The one table of error codes. Each stable `AREA_CONDITION` code has a kind, which alone decides
 * the HTTP status (see KIND_STATUS), a short title, and whether a client should retry.
 * The README's list of codes is kept in step with this table by a test.
 */
export const KIND_STATUS = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  not_acceptable: 406,
  conflict: 409,
  precondition: 412,
  too_large: 413,
  unsupported_media: 415,
  unprocessable: 422,
  rate_limited: 429,
  unavailable: 503,
  timeout: 504,
  internal: 500,
} as const;

export type ErrorKind = keyof typeof KIND_STATUS;

interface CodeInfo {
  readonly kind: ErrorKind;
  readonly title: string;
  readonly retryable?: boolean;
}

export const ERROR_CODES = {
  REQUEST_INVALID: { kind: 'invalid', title: 'The request is not valid' },
  REQUEST_TOO_LARGE: { kind: 'too_large', title: 'The request body is too large' },
  MEDIA_TYPE_UNSUPPORTED: { kind: 'unsupported_media', title: 'The request body has an unsupported media type' },
  CURSOR_INVALID: { kind: 'invalid', title: 'The paging cursor is not valid' },
  ENDPOINT_NOT_FOUND: { kind: 'not_found', title: 'No such endpoint' },
  NOT_ACCEPTABLE: { kind: 'not_acceptable', title: 'The endpoint cannot answer in a form the Accept header allows' },
  AUTH_REQUIRED: { kind: 'unauthenticated', title: 'A bearer token is required' },
  AUTH_INVALID: { kind: 'unauthenticated', title: 'The bearer token is not known' },
  SCOPE_INSUFFICIENT: { kind: 'forbidden', title: 'The token lacks the scope this needs' },
  NAMESPACE_FORBIDDEN: { kind: 'forbidden', title: 'The token may not use this namespace' },
  HOST_PROTECTED: { kind: 'forbidden', title: 'The host namespace is protected' },
  NAMESPACE_NOT_FOUND: { kind: 'not_found', title: 'No such namespace' },
  NAMESPACE_EXISTS: { kind: 'conflict', title: 'A namespace of that name exists' },
  NAMESPACE_RESERVED: { kind: 'conflict', title: 'The namespace name is reserved' },
  NAMESPACE_BUSY: { kind: 'conflict', title: 'Processes are running in the namespace' },
  NAMESPACE_UNMANAGED: { kind: 'conflict', title: 'The namespace was not created by netnsd' },
  NAMESPACE_LIMIT_REACHED: { kind: 'conflict', title: 'The configured number of namespaces is reached' },
  LINK_NOT_FOUND: { kind: 'not_found', title: 'No such link' },
  LINK_EXISTS: { kind: 'conflict', title: 'A link of that name exists' },
  LINK_BUSY: { kind: 'conflict', title: 'The link is in use' },
  LINK_VNI_IN_USE: { kind: 'conflict', title: 'Another VXLAN device uses this VNI and port' },
  LINK_KIND_UNSUPPORTED: { kind: 'unprocessable', title: 'This kernel cannot create links of this kind' },
  LINK_FEATURE_UNSUPPORTED: { kind: 'unprocessable', title: 'This kernel lacks a link feature the request needs' },
  LINK_MTU_INVALID: { kind: 'unprocessable', title: 'The link does not take this MTU' },
  LINK_MAC_INVALID: { kind: 'unprocessable', title: 'The link does not take this MAC address' },
  LINK_MASTER_NOT_FOUND: { kind: 'unprocessable', title: 'The master bridge does not exist' },
  LINK_MASTER_INVALID: { kind: 'unprocessable', title: 'The master is not a bridge this link can join' },
  LINK_PARENT_NOT_FOUND: { kind: 'unprocessable', title: 'The parent link does not exist' },
  LINK_CHANGE_UNSUPPORTED: { kind: 'unprocessable', title: 'The kernel does not allow this change to this link' },
  ADDRESS_NOT_FOUND: { kind: 'not_found', title: 'No such address' },
  ADDRESS_EXISTS: { kind: 'conflict', title: 'The link has this address' },
  ADDRESS_SCOPE_INVALID: { kind: 'unprocessable', title: 'The kernel refused the scope of the address' },
  ROUTE_NOT_FOUND: { kind: 'not_found', title: 'No such route' },
  ROUTE_EXISTS: { kind: 'conflict', title: 'A route with this table, destination and metric exists' },
  NEXTHOP_UNREACHABLE: { kind: 'unprocessable', title: 'The gateway is not reachable on any link' },
  ROUTE_SOURCE_INVALID: { kind: 'unprocessable', title: 'The source address is not an address of the namespace' },
  RULE_NOT_FOUND: { kind: 'not_found', title: 'No such policy rule' },
  RULE_EXISTS: { kind: 'conflict', title: 'A policy rule with this priority, selector and action exists' },
  RULE_AMBIGUOUS: { kind: 'conflict', title: 'The kernel would delete another rule at this priority instead' },
  NEIGHBOR_NOT_FOUND: { kind: 'not_found', title: 'No such neighbour entry' },
  NEIGHBOR_EXISTS: { kind: 'conflict', title: 'A permanent neighbour entry for this address exists on the link' },
  NEIGHBOR_MAC_INVALID: { kind: 'unprocessable', title: 'The link does not take this link-layer address' },
  NEIGHBOR_LINK_UNSUPPORTED: { kind: 'unprocessable', title: 'The link takes no neighbour entries (of this family)' },
  QDISC_NOT_FOUND: { kind: 'not_found', title: 'No such qdisc' },
  QDISC_UNSUPPORTED: { kind: 'unprocessable', title: 'This kernel lacks the qdisc kind (or the classifier) the request needs' },
  QDISC_UNMANAGED: { kind: 'conflict', title: 'A qdisc netnsd did not set is on the link' },
  QDISC_REFUSED: { kind: 'unprocessable', title: 'The kernel refused the traffic shaping setup' },
  FIREWALL_RULE_NOT_FOUND: { kind: 'not_found', title: 'No such managed firewall rule' },
  FIREWALL_RULESET_INVALID: { kind: 'invalid', title: 'nft refused the ruleset' },
  FIREWALL_POSITION_INVALID: { kind: 'unprocessable', title: 'The chain has no rule at this position' },
  FIREWALL_CHANGE_REFUSED: { kind: 'unprocessable', title: 'nft refused the firewall change' },
  FIREWALL_UNAVAILABLE: { kind: 'unavailable', title: 'nftables does not work on this machine' },
  HOST_ROUTE_CONFLICT: { kind: 'conflict', title: 'The change would touch routes the host depends on' },
  TARGET_NAMESPACE_NOT_FOUND: { kind: 'unprocessable', title: 'A namespace named in the request body does not exist' },
  PATH_TARGET_UNADDRESSED: { kind: 'unprocessable', title: 'The target namespace has no global address to reach' },
  IDEMPOTENCY_KEY_INVALID: { kind: 'invalid', title: 'The Idempotency-Key header is not valid' },
  IDEMPOTENCY_KEY_REUSED: { kind: 'unprocessable', title: 'The Idempotency-Key was used for another request' },
  IDEMPOTENCY_KEY_IN_PROGRESS: { kind: 'conflict', title: 'A request with this Idempotency-Key is still running', retryable: true },
  SYSCTL_REFUSED: { kind: 'unprocessable', title: 'The kernel refused a sysctl value' },
  EXEC_DISABLED: { kind: 'forbidden', title: 'The exec endpoint is off (configuration exec.enabled)' },
  EXEC_PROGRAM_NOT_FOUND: { kind: 'unprocessable', title: 'The program cannot be run in the namespace' },
  CONNTRACK_UNAVAILABLE: { kind: 'unavailable', title: 'Connection tracking is not available' },
  DIAGNOSTICS_BUSY: { kind: 'unavailable', title: 'Too many diagnostics are running', retryable: true },
  NATIVE_HELPER_REQUIRED: { kind: 'unavailable', title: 'This needs the native helper, which is not built' },
  RATE_LIMITED: { kind: 'rate_limited', title: 'Too many requests', retryable: true },
  EXECUTOR_BUSY: { kind: 'unavailable', title: 'Too much work is queued', retryable: true },
  EXECUTOR_TIMEOUT: { kind: 'timeout', title: 'A system command took too long', retryable: true },
  EXECUTOR_UNAVAILABLE: { kind: 'unavailable', title: 'The executor is not accepting work', retryable: true },
  TOOL_MISSING: { kind: 'unavailable', title: 'A system tool netnsd needs is not installed' },
  PRIVILEGE_REQUIRED: { kind: 'unavailable', title: 'netnsd lacks the privilege for this' },
  EVENT_SUBSCRIBERS_LIMIT: { kind: 'unavailable', title: 'The configured number of event subscribers is reached', retryable: true },
  NOT_READY: { kind: 'unavailable', title: 'netnsd is not ready', retryable: true },
  INTERNAL: { kind: 'internal', title: 'Internal error' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function codeInfo(code: ErrorCode): CodeInfo {
  return ERROR_CODES[code];
}

export function statusOf(code: ErrorCode): number {
  return KIND_STATUS[ERROR_CODES[code].kind];
}
