/* config.h — the settings of custosd (etc/custosd.conf). */
#ifndef CUSTOS_DAEMON_CONFIG_H
#define CUSTOS_DAEMON_CONFIG_H

#include "conf.h"

extern const struct conf_key custosd_schema[];

#endif
