/* SPDX-License-Identifier: MIT */
#include "nvpflow.h"

unsigned nvp_version_number(void) { return NVP_VERSION_NUMBER; }

const char *nvp_version_string(void) { return NVP_VERSION_STRING; }
