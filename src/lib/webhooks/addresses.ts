import { BlockList, isIP } from 'node:net';

/**
 * Why a webhook may not connect to an address: an endpoint URL is chosen by whoever
 * registers it, so without these checks a webhook could make the server call its own
 * loopback services, the private network or the cloud's metadata service.
 */
export type AddressRefusal =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'cloud-metadata'
  | 'unique-local'
  | 'unspecified'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'not-an-ip-address';

const descriptions: Record<AddressRefusal, string> = {
  loopback: 'a loopback address',
  private: 'a private address',
  'link-local': 'a link-local address',
  shared: 'a shared (carrier-grade NAT) address',
  'cloud-metadata': 'the cloud metadata service',
  'unique-local': 'a unique-local address',
  unspecified: 'an unspecified address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  'not-an-ip-address': 'not an IP address',
};

// Order matters: the first rule that matches names the reason, so the narrow ranges
// (the metadata address inside link-local, broadcast inside 240/4) come before the wide.
// IPv4 rules also match the IPv4-mapped IPv6 spellings (::ffff:127.0.0.1): BlockList
// checks those as the IPv4 address inside, which is where the socket really goes.
const ranges: ReadonlyArray<readonly [AddressRefusal, readonly string[]]> = [
  ['cloud-metadata', ['169.254.169.254/32', 'fd00:ec2::254/128']],
  ['broadcast', ['255.255.255.255/32']],
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fec0::/10']],
  ['shared', ['100.64.0.0/10']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['unique-local', ['fc00::/7']],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
  [
    'reserved',
    [
      '192.0.0.0/24', // IETF protocol assignments
      '192.0.2.0/24', // documentation
      '192.88.99.0/24', // 6to4 relay anycast
      '198.18.0.0/15', // benchmarking
      '198.51.100.0/24', // documentation
      '203.0.113.0/24', // documentation
      '240.0.0.0/4', // future use
      '2001::/32', // Teredo: tunnels to an IPv4 address we would not check
      '2001:db8::/32', // documentation
      '2002::/16', // 6to4: tunnels to an IPv4 address we would not check
      '3fff::/20', // documentation
    ],
  ],
];

function blockListOf(subnets: readonly string[]): BlockList {
  const list = new BlockList();
  for (const subnet of subnets) {
    const [network = '', prefix = ''] = subnet.split('/');
    list.addSubnet(network, Number(prefix), isIP(network) === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

const rules = ranges.map(([refusal, subnets]) => [refusal, blockListOf(subnets)] as const);

// Everything in IPv6 outside global unicast (2000::/3) is refused, which also covers the
// translation prefixes (NAT64 64:ff9b::/96, IPv4-compatible ::/96) that lead to an IPv4
// address; only the IPv4-mapped range is let through, as it was checked as IPv4 above.
const globalUnicast = blockListOf(['2000::/3']);
const ipv4Mapped = blockListOf(['::ffff:0:0/96']);

/** Why the address (an IPv4 or IPv6 literal, without brackets) is refused, or undefined. */
export function addressRefusal(address: string): AddressRefusal | undefined {
  const family = isIP(address);
  if (family === 0) return 'not-an-ip-address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [refusal, list] of rules) {
    if (list.check(address, type)) return refusal;
  }
  if (type === 'ipv6' && !globalUnicast.check(address, type) && !ipv4Mapped.check(address, type)) {
    return 'reserved';
  }
  return undefined;
}

/** The error a refused connection fails with; its message is meant for people. */
export class AddressRefusedError extends Error {
  override name = 'AddressRefusedError';
  readonly code = 'WEBHOOK_ADDRESS_REFUSED';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly refusal: AddressRefusal,
  ) {
    const shown = isIP(address) === 6 ? `[${address}]` : address;
    const via = host === address ? '' : ` (${host} resolves to it)`;
    super(`refused to connect to ${shown}${via}: ${descriptions[refusal]}`);
  }
}
