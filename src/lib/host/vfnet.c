/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NIC VF settings through the PF over rtnetlink, with libnl-route-3. As
 * libvirt's virNetDevSetVfConfig does, each change is an RTM_SETLINK on the
 * PF carrying IFLA_VFINFO_LIST/IFLA_VF_INFO for one VF; reads are an
 * RTM_GETLINK with RTEXT_FILTER_VF (libnl >= 3.5 asks for it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/if_ether.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/sriov.h>

#include "iovm/sriov.h"
#include "iovm/vfnet.h"
#include "lib/host/sysfs.h"
#include "shared/nlerr.h"
#include "shared/util.h"

struct iovm_vfnet {
	iovm_host *h;
	struct nl_sock *sk;
};

int iovm_vfnet_open(iovm_host *h, iovm_vfnet **ret, iovm_error *err)
{
	_cleanup_free_ iovm_vfnet *nl = NULL;
	uint64_t usec;
	struct timeval tv;
	int r;

	if (!h || !ret)
		return iovm_error_set(err, -EINVAL, "vfnet: invalid argument");
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return iovm_error_set(err, -ENOMEM, "vfnet: out of memory");
	nl->h = h;
	nl->sk = nl_socket_alloc();
	if (!nl->sk)
		return iovm_error_set(err, -ENOMEM, "vfnet: out of memory");
	r = nl_connect(nl->sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(nl->sk);
		return iovm_error_set(err, nlerr_to_errno(r), "vfnet: rtnetlink socket: %s",
				      nl_geterror(r));
	}
	usec = iovm_host_get_timeout(h, IOVM_TIMEOUT_SYSFS);
	tv.tv_sec = (time_t)(usec / 1000000u);
	tv.tv_usec = (suseconds_t)(usec % 1000000u);
	setsockopt(nl_socket_get_fd(nl->sk), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*ret = TAKE_PTR(nl);
	return 0;
}

iovm_vfnet *iovm_vfnet_close(iovm_vfnet *nl)
{
	if (nl) {
		nl_socket_free(nl->sk);
		free(nl);
	}
	return NULL;
}

/* The PF, which must have a netdev: VF settings go through it. */
static int pf_with_netdev(iovm_vfnet *nl, const char *pf, iovm_pf *p, iovm_error *err)
{
	int r = iovm_pf_get(nl->h, pf, p, err);

	if (r < 0)
		return r;
	if (!p->netdev[0])
		return iovm_error_set(err, -ENODEV, "pf %s: no network device (driver %s); VF "
				      "settings go through the PF's netdev", p->addr,
				      p->driver[0] ? p->driver : "none");
	return 0;
}

/* PF name -> its netdev, with errors that name the PF. */
static int pf_netdev(iovm_vfnet *nl, const char *pf, unsigned vf, char *ifname,
		     iovm_error *err)
{
	iovm_pf p;
	int r;

	r = pf_with_netdev(nl, pf, &p, err);
	if (r < 0)
		return r;
	if (vf >= p.num_vfs)
		return iovm_error_set(err, -ENODEV, "pf %s vf %u: no such VF (%u VFs)", p.netdev,
				      vf, p.num_vfs);
	snprintf(ifname, IF_NAMESIZE, "%s", p.netdev);
	return 0;
}

static int fetch(iovm_vfnet *nl, const char *ifname, struct rtnl_link **ret, iovm_error *err)
{
	int r = rtnl_link_get_kernel(nl->sk, 0, ifname, ret);

	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "pf %s: reading link over rtnetlink "
				      "failed: %s", ifname, nl_geterror(r));
	return 0;
}

static void cfg_from_vf(struct rtnl_link_vf *v, iovm_vfnet_config *c)
{
	struct nl_addr *addr;
	nl_vf_vlans_t *vlans;
	struct nl_vf_rate rate;
	uint32_t u;

	memset(c, 0, sizeof(*c));
	/* The kernel always sends MAC, VLAN, rate, spoofchk (or -1), link
	 * state and trust (or -1); libnl drops zero/-1 values, so a missing
	 * MAC/VLAN/rate means zero, a missing spoofchk/trust means unsupported. */
	c->present |= IOVM_VFNET_MAC | IOVM_VFNET_VLAN | IOVM_VFNET_RATE;
	if (rtnl_link_vf_get_addr(v, &addr) == 0 && nl_addr_get_len(addr) >= 6)
		memcpy(c->mac, nl_addr_get_binary_addr(addr), 6);
	if (rtnl_link_vf_get_vlans(v, &vlans) == 0) {
		if (vlans->size > 0) {
			c->vlan = (uint16_t)vlans->vlans[0].vf_vlan;
			c->qos = (uint8_t)vlans->vlans[0].vf_vlan_qos;
		}
		rtnl_link_vf_vlan_put(vlans);
	}
	if (rtnl_link_vf_get_rate(v, &rate) == 0)
		c->max_tx_rate = rate.api == RTNL_LINK_VF_RATE_API_OLD ? rate.rate : rate.max_tx_rate;
	if (rtnl_link_vf_get_spoofchk(v, &u) == 0) {
		c->spoofchk = u != 0;
		c->present |= IOVM_VFNET_SPOOFCHK;
	}
	if (rtnl_link_vf_get_trust(v, &u) == 0) {
		c->trust = u != 0;
		c->present |= IOVM_VFNET_TRUST;
	}
	if (rtnl_link_vf_get_linkstate(v, &u) == 0 && u <= IOVM_VF_LINK_DISABLE) {
		c->link_state = (iovm_vf_link_state)u;
		c->present |= IOVM_VFNET_LINK_STATE;
	}
}

static int get_vf(iovm_vfnet *nl, const char *ifname, unsigned vf, iovm_vfnet_config *cfg,
		  iovm_vfnet_stats *stats, iovm_error *err)
{
	struct rtnl_link *link = NULL;
	struct rtnl_link_vf *v;
	int r;

	r = fetch(nl, ifname, &link, err);
	if (r < 0)
		return r;
	if (!rtnl_link_has_vf_list(link) || !(v = rtnl_link_vf_get(link, vf))) {
		rtnl_link_put(link);
		return iovm_error_set(err, -ENODEV, "pf %s vf %u: the kernel reports no settings "
				      "for this VF", ifname, vf);
	}
	if (cfg)
		cfg_from_vf(v, cfg);
	if (stats) {
		static const rtnl_link_vf_stats_t ids[] = {
			RTNL_LINK_VF_STATS_RX_PACKETS, RTNL_LINK_VF_STATS_TX_PACKETS,
			RTNL_LINK_VF_STATS_RX_BYTES, RTNL_LINK_VF_STATS_TX_BYTES,
			RTNL_LINK_VF_STATS_BROADCAST, RTNL_LINK_VF_STATS_MULTICAST,
		};
		uint64_t *out[] = { &stats->rx_packets, &stats->tx_packets, &stats->rx_bytes,
				    &stats->tx_bytes, &stats->broadcast, &stats->multicast };

		for (size_t i = 0; i < ELEMENTSOF(ids); i++)
			if (rtnl_link_vf_get_stat(v, ids[i], out[i]) < 0)
				r = -EOPNOTSUPP;
		if (r < 0)
			iovm_error_set(err, r, "pf %s vf %u: the driver reports no per-VF statistics",
				       ifname, vf);
	}
	rtnl_link_vf_put(v);
	rtnl_link_put(link);
	return r;
}

int iovm_vfnet_get(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_config *ret,
		   iovm_error *err)
{
	char ifname[IF_NAMESIZE];
	iovm_vfnet_config c;
	int r;

	if (!nl || !ret)
		return iovm_error_set(err, -EINVAL, "vfnet get: invalid argument");
	r = pf_netdev(nl, pf, vf, ifname, err);
	if (r < 0)
		return r;
	r = get_vf(nl, ifname, vf, &c, NULL, err);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

int iovm_vfnet_get_all_netdev(iovm_vfnet *nl, const char *ifname, iovm_vfnet_config *cfgs,
			      iovm_vfnet_stats *stats, size_t n, iovm_error *err)
{
	struct rtnl_link *link = NULL;
	uint32_t num = 0;
	size_t m;
	int r;

	if (!nl || !ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || (n && !cfgs && !stats))
		return iovm_error_set(err, -EINVAL, "vfnet get all: invalid argument");
	r = fetch(nl, ifname, &link, err);
	if (r < 0)
		return r;
	if (rtnl_link_get_num_vf(link, &num) < 0)
		num = 0;
	m = n < num ? n : num;
	for (size_t i = 0; i < n; i++) {
		struct rtnl_link_vf *v = i < m && rtnl_link_has_vf_list(link) ?
					 rtnl_link_vf_get(link, (uint32_t)i) : NULL;

		if (cfgs)
			memset(&cfgs[i], 0, sizeof(cfgs[i]));
		if (stats)
			memset(&stats[i], 0, sizeof(stats[i]));
		if (!v)
			continue;
		if (cfgs)
			cfg_from_vf(v, &cfgs[i]);
		if (stats) {
			uint64_t x;

			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_RX_PACKETS, &x) == 0) stats[i].rx_packets = x;
			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_TX_PACKETS, &x) == 0) stats[i].tx_packets = x;
			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_RX_BYTES, &x) == 0) stats[i].rx_bytes = x;
			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_TX_BYTES, &x) == 0) stats[i].tx_bytes = x;
			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_BROADCAST, &x) == 0) stats[i].broadcast = x;
			if (rtnl_link_vf_get_stat(v, RTNL_LINK_VF_STATS_MULTICAST, &x) == 0) stats[i].multicast = x;
		}
		rtnl_link_vf_put(v);
	}
	rtnl_link_put(link);
	return (int)m;
}

int iovm_vfnet_get_all(iovm_vfnet *nl, const char *pf, iovm_vfnet_config *cfgs, iovm_vfnet_stats *stats,
		       size_t n, iovm_error *err)
{
	iovm_pf p;
	int r;

	if (!nl || !pf || (n && !cfgs && !stats))
		return iovm_error_set(err, -EINVAL, "vfnet get all: invalid argument");
	r = pf_with_netdev(nl, pf, &p, err);
	if (r < 0)
		return r;
	r = iovm_vfnet_get_all_netdev(nl, p.netdev, cfgs, stats, n, err);
	return r < 0 || (unsigned)r < p.num_vfs ? r : (int)p.num_vfs;
}

int iovm_vfnet_get_stats(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_stats *ret,
		     iovm_error *err)
{
	char ifname[IF_NAMESIZE];
	iovm_vfnet_stats s = {};
	int r;

	if (!nl || !ret)
		return iovm_error_set(err, -EINVAL, "vfnet stats: invalid argument");
	r = pf_netdev(nl, pf, vf, ifname, err);
	if (r < 0)
		return r;
	r = get_vf(nl, ifname, vf, NULL, &s, err);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}

static const char *field_name(unsigned f)
{
	switch (f) {
	case IOVM_VFNET_MAC: return "mac";
	case IOVM_VFNET_VLAN: return "vlan";
	case IOVM_VFNET_RATE: return "max tx rate";
	case IOVM_VFNET_SPOOFCHK: return "spoof check";
	case IOVM_VFNET_TRUST: return "trust";
	case IOVM_VFNET_LINK_STATE: return "link state";
	default: return "?";
	}
}

/* Builds the one-field change on v. */
static int fill_field(struct rtnl_link_vf *v, unsigned f, const iovm_vfnet_config *c)
{
	switch (f) {
	case IOVM_VFNET_MAC: {
		struct nl_addr *a = nl_addr_build(AF_LLC, c->mac, 6);

		if (!a)
			return -ENOMEM;
		rtnl_link_vf_set_addr(v, a);
		nl_addr_put(a);
		return 0;
	}
	case IOVM_VFNET_VLAN: {
		nl_vf_vlans_t *vl = NULL;

		if (rtnl_link_vf_vlan_alloc(&vl, 1) < 0)
			return -ENOMEM;
		vl->vlans[0].vf_vlan = c->vlan;
		vl->vlans[0].vf_vlan_qos = c->qos;
		vl->vlans[0].vf_vlan_proto = ETH_P_8021Q;
		rtnl_link_vf_set_vlans(v, vl);
		rtnl_link_vf_vlan_put(vl);
		return 0;
	}
	case IOVM_VFNET_RATE: {
		struct nl_vf_rate rate = { .api = RTNL_LINK_VF_RATE_API_NEW,
					   .max_tx_rate = c->max_tx_rate };

		rtnl_link_vf_set_rate(v, &rate);
		return 0;
	}
	case IOVM_VFNET_SPOOFCHK:
		rtnl_link_vf_set_spoofchk(v, c->spoofchk);
		return 0;
	case IOVM_VFNET_TRUST:
		rtnl_link_vf_set_trust(v, c->trust);
		return 0;
	case IOVM_VFNET_LINK_STATE:
		rtnl_link_vf_set_linkstate(v, c->link_state);
		return 0;
	}
	return -EINVAL;
}

static bool field_equal(unsigned f, const iovm_vfnet_config *a, const iovm_vfnet_config *b)
{
	switch (f) {
	case IOVM_VFNET_MAC: return memcmp(a->mac, b->mac, 6) == 0;
	case IOVM_VFNET_VLAN: return a->vlan == b->vlan && (a->vlan == 0 || a->qos == b->qos);
	case IOVM_VFNET_RATE: return a->max_tx_rate == b->max_tx_rate;
	case IOVM_VFNET_SPOOFCHK: return a->spoofchk == b->spoofchk;
	case IOVM_VFNET_TRUST: return a->trust == b->trust;
	case IOVM_VFNET_LINK_STATE: return a->link_state == b->link_state;
	}
	return false;
}

static int set_field(iovm_vfnet *nl, const char *ifname, unsigned vf, unsigned f,
		     const iovm_vfnet_config *c, iovm_error *err)
{
	struct rtnl_link *orig = NULL, *chg = NULL;
	struct rtnl_link_vf *v = NULL;
	iovm_vfnet_config now;
	int r;

	r = fetch(nl, ifname, &orig, err);
	if (r < 0)
		return r;
	chg = rtnl_link_alloc();
	v = rtnl_link_vf_alloc();
	if (!chg || !v) {
		r = iovm_error_set(err, -ENOMEM, "pf %s vf %u: out of memory", ifname, vf);
		goto out;
	}
	rtnl_link_vf_set_index(v, vf);
	r = fill_field(v, f, c);
	if (r >= 0)
		r = rtnl_link_vf_add(chg, v);
	if (r < 0) {
		r = iovm_error_set(err, -ENOMEM, "pf %s vf %u: out of memory", ifname, vf);
		goto out;
	}
	r = rtnl_link_change(nl->sk, orig, chg, 0);
	if (r < 0) {
		int e = nlerr_to_errno(r);

		r = iovm_error_set(err, e, "pf %s vf %u: setting %s failed: %s%s", ifname, vf,
				   field_name(f), e == -EOPNOTSUPP ? "not supported by the driver"
								   : nl_geterror(r),
				   e != -EINVAL || f != IOVM_VFNET_RATE ? "" :
				   rtnl_link_get_carrier(orig) != 1 ?
				   " (the PF link is down: a VF rate is checked against the link speed)" :
				   " (the rate must not exceed the PF link speed)");
		goto out;
	}
	r = get_vf(nl, ifname, vf, &now, NULL, err);
	if (r >= 0 && !field_equal(f, c, &now))
		r = iovm_error_set(err, -EIO, "pf %s vf %u: %s did not take effect (the driver "
				   "accepted it; is the PF up?)", ifname, vf, field_name(f));
out:
	if (v)
		rtnl_link_vf_put(v);
	if (chg)
		rtnl_link_put(chg);
	rtnl_link_put(orig);
	return r;
}

static int validate(const iovm_vfnet_config *c, unsigned mask, iovm_error *err)
{
	if (mask & ~IOVM_VFNET_ALL)
		return iovm_error_set(err, -EINVAL, "vfnet: unknown fields in mask 0x%x", mask);
	if ((mask & IOVM_VFNET_MAC) && (c->mac[0] & 1))
		return iovm_error_set(err, -EINVAL, "vfnet: mac %02x:%02x:%02x:%02x:%02x:%02x is "
				      "multicast", c->mac[0], c->mac[1], c->mac[2], c->mac[3],
				      c->mac[4], c->mac[5]);
	if ((mask & IOVM_VFNET_VLAN) && (c->vlan > 4094 || c->qos > 7 || (c->qos && !c->vlan)))
		return iovm_error_set(err, -EINVAL, "vfnet: vlan %u qos %u out of range (vlan "
				      "0-4094, qos 0-7 with a vlan)", c->vlan, c->qos);
	if ((mask & IOVM_VFNET_LINK_STATE) && (unsigned)c->link_state > IOVM_VF_LINK_DISABLE)
		return iovm_error_set(err, -EINVAL, "vfnet: link state %d invalid", c->link_state);
	return 0;
}

int iovm_vfnet_set(iovm_vfnet *nl, const char *pf, unsigned vf, const iovm_vfnet_config *cfg,
		   unsigned mask, iovm_error *err)
{
	char ifname[IF_NAMESIZE];
	int r;

	if (!nl || !cfg)
		return iovm_error_set(err, -EINVAL, "vfnet set: invalid argument");
	r = validate(cfg, mask, err);
	if (r < 0)
		return r;
	r = pf_netdev(nl, pf, vf, ifname, err);
	if (r < 0)
		return r;
	for (unsigned f = 1; f <= IOVM_VFNET_LINK_STATE; f <<= 1)
		if (mask & f) {
			r = set_field(nl, ifname, vf, f, cfg, err);
			if (r < 0)
				return r;
		}
	return 0;
}

int iovm_vfnet_save(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_config *ret,
		    iovm_error *err)
{
	return iovm_vfnet_get(nl, pf, vf, ret, err);
}

int iovm_vfnet_restore(iovm_vfnet *nl, const char *pf, unsigned vf,
		       const iovm_vfnet_config *saved, iovm_error *err)
{
	iovm_vfnet_config now;
	unsigned mask = 0;
	int r;

	if (!saved)
		return iovm_error_set(err, -EINVAL, "vfnet restore: invalid argument");
	r = iovm_vfnet_get(nl, pf, vf, &now, err);
	if (r < 0)
		return r;
	/* Only what differs: fewer driver calls, and a field the driver
	 * cannot set (link state on igb) is not an error if unchanged. */
	for (unsigned f = 1; f <= IOVM_VFNET_LINK_STATE; f <<= 1)
		if ((saved->present & f) && !field_equal(f, saved, &now))
			mask |= f;
	r = iovm_vfnet_set(nl, pf, vf, saved, mask, err);
	if (r < 0)
		return iovm_error_prefix(err, "restoring saved VF settings");
	return 0;
}
