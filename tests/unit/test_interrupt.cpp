// The interrupt handler (core/interrupt.hpp), exercised in forked children: each child installs
// it, creates temporaries, and is signalled; the parent checks its exit status, what it printed
// and what is left on disk.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "ropekit/core/interrupt.hpp"
#include "ropekit/core/output_path.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;
namespace fs = std::filesystem;

namespace {

struct ChildResult {
    int status = -1;  // exit code, or -signal when killed
    std::string stderr_text;
};

// Runs `body` in a child process with stderr captured; the child exits 0 when body returns.
ChildResult run_child(const std::function<void()>& body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(fds[1], STDERR_FILENO);
        ::close(fds[0]);
        try {
            body();
        } catch (...) {
            ::_exit(98);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    ChildResult result;
    char buffer[256];
    for (ssize_t got; (got = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
        result.stderr_text.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return result;
}

void touch(const std::string& path) {
    std::ofstream(path) << "data";
}

}  // namespace

TEST_CASE("an interrupt removes every registered temporary, says so and exits 128 + signal") {
    TempDir dir;
    touch(dir.file("input"));
    const ChildResult r = run_child([&] {
        install_interrupt_handler("unit");
        const std::string file = make_temp_beside(dir.file("out.h5"));
        touch(file);
        const std::string tree = make_temp_dir_beside(dir.file("checkpoint"));
        fs::create_directories(tree + "/a/b");
        touch(tree + "/config.json");
        touch(tree + "/a/b/weights.bin");
        const std::string done = make_temp_beside(dir.file("done"));
        unregister_temporary(done);  // as if committed: must stay
        std::raise(SIGTERM);
        ::_exit(99);  // not reached
    });
    CHECK(r.status == 128 + SIGTERM);
    CHECK(r.stderr_text == "unit: interrupted; nothing written\n");
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir.path())) {
        left.push_back(entry.path().filename().string());
    }
    REQUIRE(left.size() == 2);  // the input and the unregistered temporary
    CHECK(fs::exists(dir.file("input")));
}

TEST_CASE("a signal caught on another thread is handled by the installing thread") {
    TempDir dir;
    const ChildResult r = run_child([&] {
        install_interrupt_handler("unit");
        touch(make_temp_beside(dir.file("out")));
        std::thread([] { std::raise(SIGINT); }).join();  // caught on that thread
        ::pause();                                       // the handler runs here, or has already
        ::_exit(99);
    });
    CHECK(r.status == 130);
    CHECK(dir.entries() == 0);
}

TEST_CASE("held signals arrive when the hold ends, with the temporary registered") {
    TempDir dir;
    const ChildResult r = run_child([&] {
        install_interrupt_handler("unit");
        {
            const InterruptsHeld held;
            std::raise(SIGHUP);  // pending while held
            const std::string path = dir.file("registered-late");
            touch(path);
            register_temporary(path);
        }
        ::_exit(99);
    });
    CHECK(r.status == 128 + SIGHUP);
    CHECK(dir.entries() == 0);
}

TEST_CASE("once a run commits, signals no longer stop it") {
    TempDir dir;
    const ChildResult r = run_child([&] {
        install_interrupt_handler("unit");
        TempOutput temp(make_temp_beside(dir.file("out")));
        touch(temp.path());
        temp.commit_to(dir.file("out"));
        std::raise(SIGTERM);
        std::raise(SIGPIPE);
    });
    CHECK(r.status == 0);
    CHECK(r.stderr_text.empty());
    CHECK(fs::exists(dir.file("out")));
}

TEST_CASE("a signal after the outcome is decided adds no line and keeps the run's exit code") {
    const ChildResult r = run_child([&] {
        install_interrupt_handler("unit");
        outcome_decided();
        ::write(STDERR_FILENO, "unit: the error\n", 16);
        std::raise(SIGTERM);  // mpirun ending this rank after another one failed
        ::_exit(1);
    });
    CHECK(r.status == 1);
    CHECK(r.stderr_text == "unit: the error\n");
}

TEST_CASE("a signal ignored when the run started stays ignored, except SIGPIPE") {
    const ChildResult hup = run_child([] {
        std::signal(SIGHUP, SIG_IGN);  // nohup
        install_interrupt_handler("unit");
        std::raise(SIGHUP);
    });
    CHECK(hup.status == 0);
    const ChildResult pipe = run_child([] {
        std::signal(SIGPIPE, SIG_IGN);
        install_interrupt_handler("unit");
        std::raise(SIGPIPE);
    });
    CHECK(pipe.status == 128 + SIGPIPE);
    CHECK(pipe.stderr_text == "unit: interrupted; nothing written\n");
}
