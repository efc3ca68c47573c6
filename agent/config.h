/* config.h — the settings of custos-agent (etc/custos-agent.conf). */
#ifndef CUSTOS_AGENT_CONFIG_H
#define CUSTOS_AGENT_CONFIG_H

#include "conf.h"

extern const struct conf_key agent_schema[];

#endif
