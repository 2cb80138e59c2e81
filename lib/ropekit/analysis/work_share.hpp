#pragma once
// One process's part of a run that several processes split (the MPI build's ranks): which
// sequences it reads, and how the parts' statistics reach the part that writes. The analysis stays
// free of MPI: the mpi module fills `gather`; a serial run is the one part, without it.
#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace ropekit {

struct WorkShare {
    std::size_t part = 0, parts = 1;
    // Collective: every part's packed statistics, in part order, on part 0 (empty elsewhere).
    std::function<std::vector<std::vector<double>>(const std::vector<double>&)> gather;

    bool writes() const { return part == 0; }
    // First and count of this part's sequences out of `total`: contiguous, sizes differing by one.
    std::pair<std::size_t, std::size_t> sequences(std::size_t total) const {
        const std::size_t first = total * part / parts;
        return {first, total * (part + 1) / parts - first};
    }
};

}  // namespace ropekit
