import { Type, type Static } from '@sinclair/typebox';

const SupportSchema = Type.Object(
  {
    supported: Type.Array(Type.String(), { description: 'What works on this machine.' }),
    unsupported: Type.Array(Type.String(), { description: 'What was probed and refused by the kernel or tools.' }),
  },
  { additionalProperties: false },
);

export const CapabilitiesSchema = Type.Object(
  {
    probedAt: Type.String({ format: 'date-time', description: 'When the probe ran (once, at start).' }),
    kernel: Type.String({ description: 'Kernel release (`uname -r`).' }),
    tools: Type.Object(
      {
        ip: Type.Union([Type.String(), Type.Null()], { description: 'iproute2 version, or null when `ip` is missing.' }),
        tc: Type.Union([Type.String(), Type.Null()]),
        nft: Type.Union([Type.String(), Type.Null()], { description: 'nftables version, or null when `nft` is missing.' }),
        conntrack: Type.Union([Type.String(), Type.Null()], { description: 'conntrack-tools version, or null when `conntrack` is missing (GET .../conntrack then answers 503 TOOL_MISSING).' }),
      },
      { additionalProperties: false },
    ),
    nativeHelper: Type.Boolean({
      description: 'Whether the in-process helper (loopback, nsid, link lists without a process) is in use.',
    }),
    linkKinds: SupportSchema,
    linkFeatures: Type.Record(Type.String(), Type.Boolean(), {
      description: 'Link features by `kind.feature`, e.g. `bridge.vlan_filtering`.',
    }),
    qdiscs: SupportSchema,
    classifiers: SupportSchema,
    nftables: Type.Boolean({ description: 'Whether nftables works inside a namespace.' }),
  },
  { $id: 'Capabilities', additionalProperties: false },
);
export type Capabilities = Static<typeof CapabilitiesSchema>;
