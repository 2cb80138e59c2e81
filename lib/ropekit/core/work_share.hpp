#pragma once
// One process's part of a run that several processes split (the MPI build's ranks): which
// sequences it reads, and how the parts' statistics reach the part that writes. The library stays
// free of MPI: the mpi module fills `gather` and `agree`; a serial run is the one part, without
// them.
#include <cstddef>
#include <exception>
#include <functional>
#include <utility>
#include <vector>

namespace ropekit {

struct WorkShare {
    std::size_t part = 0, parts = 1;
    // Collective: every part's packed statistics, in part order, on part 0 (empty elsewhere).
    std::function<std::vector<std::vector<double>>(const std::vector<double>&)> gather;

    // Collective, after gather: every part says whether its step failed (null: it did not); if any
    // did, every part throws the lowest failing part's error. rope-dump's shards are renamed into
    // place between gather and agree, and removed again when agree throws.
    std::function<void(std::exception_ptr)> agree;

    bool writes() const { return part == 0; }
    // First and count of this part's sequences out of `total`: contiguous, sizes differing by one.
    std::pair<std::size_t, std::size_t> sequences(std::size_t total) const {
        const std::size_t first = total * part / parts;
        return {first, total * (part + 1) / parts - first};
    }
};

}  // namespace ropekit
