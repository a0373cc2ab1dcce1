/* Which host every rank runs on, and one message between every pair of ranks (so that every pair opens its
 * connection and Open MPI's BTL choice for it shows in --mca btl_base_verbose output). Prints, on rank 0,
 * "rank R on HOST" for every rank and "pairs ok N" when every exchange returned the sender's rank.
 * Built and run by tests/test_cluster.sh: mpicc -o mpi_hosts mpi_hosts.c; mpirun --host a:2,b:2 mpi_hosts */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    char all[64 * 64];
    if (size > 64) MPI_Abort(MPI_COMM_WORLD, 2);
    MPI_Gather(host, 64, MPI_CHAR, all, 64, MPI_CHAR, 0, MPI_COMM_WORLD);
    int good = 0;
    for (int peer = 0; peer < size; peer++) {
        if (peer == rank) continue;
        int got = -1;
        MPI_Sendrecv(&rank, 1, MPI_INT, peer, 0, &got, 1, MPI_INT, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        good += got == peer;
    }
    int total = 0;
    MPI_Reduce(&good, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        for (int r = 0; r < size; r++) printf("rank %d on %s\n", r, all + 64 * r);
        printf("pairs ok %d of %d\n", total, size * (size - 1));
    }
    MPI_Finalize();
    return 0;
}
