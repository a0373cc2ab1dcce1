/* config_dump: prints the default configuration as vamp_mpi resolves it (config_to_ini), for the doc test. */
#include <stdio.h>

#include "vamp/config.h"

int main(void)
{
    vamp_config c;
    static char buf[65536];
    config_defaults(&c);
    if (config_to_ini(&c, buf, sizeof buf) < 0) return 1;
    fputs(buf, stdout);
    return 0;
}
