/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A NIC VF's settings as a value (MAC, VLAN + QoS, max tx rate, spoof check,
 * trust, link state) and its statistics: what the API, the state store and
 * the netlink calls (vfnet.h) all pass around. Nothing here talks to the
 * kernel.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/types.h"

/* Fields of iovm_vfnet_config, as a mask for set and for what get found. */
#define IOVM_VFNET_MAC        (1u << 0)
#define IOVM_VFNET_VLAN       (1u << 1)   /* vlan and qos together */
#define IOVM_VFNET_RATE       (1u << 2)
#define IOVM_VFNET_SPOOFCHK   (1u << 3)
#define IOVM_VFNET_TRUST      (1u << 4)
#define IOVM_VFNET_LINK_STATE (1u << 5)
#define IOVM_VFNET_ALL        0x3fu

typedef struct iovm_vfnet_config {
	unsigned present;          /* IOVM_VFNET_* the driver reported (get) */
	uint8_t mac[6];            /* all zero: no administrative MAC */
	uint16_t vlan;             /* 0: no VLAN; 1..4094 */
	uint8_t qos;               /* 802.1p priority 0..7 */
	uint32_t max_tx_rate;      /* Mbit/s, 0: unlimited */
	bool spoofchk;
	bool trust;
	iovm_vf_link_state link_state;
} iovm_vfnet_config;

typedef struct iovm_vfnet_stats {
	uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes, broadcast, multicast;
} iovm_vfnet_stats;

/* A saved config as one line for the state store, and back:
 * "mac=02:00:00:00:00:01 vlan=10 qos=3 rate=100 spoofchk=1 trust=0 link=auto"
 * (only present fields). Parse returns -EINVAL naming the bad token. */
int iovm_vfnet_config_format(const iovm_vfnet_config *cfg, char *ret, size_t n);
int iovm_vfnet_config_parse(const char *s, iovm_vfnet_config *ret, iovm_error *err);
/* "aa:bb:cc:dd:ee:ff" -> bytes; -EINVAL if malformed. */
int iovm_mac_parse(const char *s, uint8_t ret[6]);
/* bytes -> "aa:bb:cc:dd:ee:ff" (lower case) into ret[18]; returns ret. */
char *iovm_mac_format(const uint8_t mac[6], char ret[18]);
