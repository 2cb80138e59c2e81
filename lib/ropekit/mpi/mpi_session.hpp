#pragma once
// The MPI build's one addition (compiled only with -DROPEKIT_MPI=ON, `make mpi`): a tool's
// run split over the ranks of mpirun / srun. Each rank reads its share of the sequences, the
// statistics reach rank 0 in rank order (WorkShare::gather), and rank 0 writes. An error on any
// rank reaches the user as one line "tool: rank R: ...", and every rank exits with its code.
#include <functional>

#include "ropekit/core/work_share.hpp"

namespace ropekit {

class MpiSession {
  public:
    // MPI_Init; ranks other than 0 send stderr to /dev/null (rank 0 reports for all).
    MpiSession(int& argc, char**& argv);
    ~MpiSession();  // MPI_Finalize
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }

    // Runs `body` on every rank with this rank's WorkShare. Errors: before the gather, the lowest
    // failing rank's error is thrown on every rank, prefixed "rank R: "; after it (rank 0
    // writing), rank 0's error, and the other ranks throw the same; a step the ranks close with
    // WorkShare::agree, the lowest failing rank's error on every rank.
    void run(const std::function<void(const WorkShare&)>& body) const;

  private:
    int rank_ = 0, size_ = 1;
};

}  // namespace ropekit
