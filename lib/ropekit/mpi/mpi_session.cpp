#include "ropekit/mpi/mpi_session.hpp"

#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

// What every rank knows after a failure: the code and message the user sees.
struct Failure {
    int code = 0;
    std::string message;
};

// Collective: the lowest failing rank's failure (code 0 if none failed), sent to every rank.
Failure agree(const Failure& mine, int rank, int size) {
    const int candidate = mine.code != 0 ? rank : size;
    int failed = size;
    MPI_Allreduce(&candidate, &failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (failed == size) return {};
    Failure f = mine;
    int length = static_cast<int>(f.message.size());
    MPI_Bcast(&f.code, 1, MPI_INT, failed, MPI_COMM_WORLD);
    MPI_Bcast(&length, 1, MPI_INT, failed, MPI_COMM_WORLD);
    f.message.resize(static_cast<std::size_t>(length));
    MPI_Bcast(f.message.data(), length, MPI_CHAR, failed, MPI_COMM_WORLD);
    f.message = "rank " + std::to_string(failed) + ": " + f.message;
    return f;
}

Failure failure_of(const std::exception& e) {
    if (const auto* error = dynamic_cast<const Error*>(&e)) {
        return {static_cast<int>(error->code()), error->what()};
    }
    if (dynamic_cast<const std::bad_alloc*>(&e)) return {1, "out of memory"};
    return {1, std::string("internal error: ") + e.what()};
}

[[noreturn]] void raise(const Failure& f) {
    throw Error(static_cast<ExitCode>(f.code), f.message);
}

std::vector<std::vector<double>> gather_to_root(const std::vector<double>& mine, int rank,
                                                int size) {
    const int count = static_cast<int>(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(size)), offsets(counts.size());
    MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::vector<double> all;
    if (rank == 0) {
        for (std::size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
        all.resize(static_cast<std::size_t>(offsets.back() + counts.back()));
    }
    MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
                MPI_DOUBLE, 0, MPI_COMM_WORLD);
    std::vector<std::vector<double>> parts;
    if (rank != 0) return parts;
    for (std::size_t r = 0; r < counts.size(); ++r) {
        parts.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + counts[r]);
    }
    return parts;
}

}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (rank_ != 0 && !std::freopen("/dev/null", "w", stderr)) std::fclose(stderr);
}

MpiSession::~MpiSession() {
    MPI_Finalize();
}

void MpiSession::run(const std::function<void(const WorkShare&)>& body) const {
    bool gathered = false, agreed_failure = false;
    WorkShare share;
    share.part = static_cast<std::size_t>(rank_);
    share.parts = static_cast<std::size_t>(size_);
    share.gather = [&](const std::vector<double>& mine) {
        const Failure none = agree({}, rank_, size_);
        agreed_failure = none.code != 0;
        if (agreed_failure) raise(none);
        gathered = true;
        return gather_to_root(mine, rank_, size_);
    };
    share.agree = [&](std::exception_ptr error) {
        Failure step;
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                step = failure_of(e);
            }
        }
        const Failure f = agree(step, rank_, size_);
        agreed_failure = f.code != 0;
        if (agreed_failure) raise(f);
    };
    Failure mine;
    try {
        body(share);
    } catch (const std::exception& e) {
        if (agreed_failure) throw;  // every rank knows it already
        mine = failure_of(e);
    }
    // Every rank reaches exactly one of the two collectives below.
    if (!gathered) {
        const Failure f = agree(mine, rank_, size_);
        if (f.code != 0) raise(f);
        return;
    }
    int code = mine.code;
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (code != 0) raise(rank_ == 0 ? Failure{code, "rank 0: " + mine.message} : Failure{code, ""});
}

}  // namespace ropekit
