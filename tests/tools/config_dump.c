/* config_dump [FILE.ini]: prints the configuration vamp_mpi resolves (config_to_ini) from the defaults, or from
 * FILE.ini over the defaults, for the doc and preset tests. Exit 2 with the parser's message on a bad file. */
#include <stdio.h>

#include "vamp/config.h"

int main(int argc, char **argv)
{
    vamp_config c;
    static char buf[65536];
    char err[2048];
    if (config_load(&c, argc > 1 ? argv[1] : NULL, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "config_dump: %s\n", err);
        return 2;
    }
    if (config_to_ini(&c, buf, sizeof buf) < 0) return 1;
    fputs(buf, stdout);
    return 0;
}
