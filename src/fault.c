/* SPDX-License-Identifier: MIT */
/* fault.c - the fault-injection counters (see fault.h). */
#include "config.h"

#include "fault.h"

int mfd__fault_zc_enobufs;
