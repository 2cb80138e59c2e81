#pragma once
// Interrupted runs leave nothing behind. Every temporary a run creates (hidden output files and
// directories, the spooled copy of stdin) is registered here until it is committed or removed.
// On SIGINT, SIGTERM, SIGHUP or SIGPIPE the handler removes the registered paths (directories
// with everything in them), prints "TOOL: interrupted; nothing written" and exits 128 + signal.
//
// The handler only makes async-signal-safe calls (unlinkat, openat, getdents64, write, _exit)
// and only reads the registry, which keeps its paths in fixed buffers. It always runs on the
// thread that installed it (a signal caught on another thread is passed on to that one), and
// that thread holds the signals back while it creates and registers a temporary, so the handler
// never sees a temporary that exists but is not registered yet.
//
// Once a run starts committing its outputs (the first rename into place) it is past the point
// of no return: a signal is then held until the run ends, and the run finishes normally.
#include <csignal>
#include <string>

namespace ropekit {

// Installs the handler for the calling thread (a tool's main thread); `tool` prefixes the line.
// A signal the process inherited as ignored (nohup, `cmd &` in a script) stays ignored, except
// SIGPIPE: a closed output pipe always ends the run the same way.
void install_interrupt_handler(const std::string& tool);

// While alive, the calling thread holds the interrupt signals back (they stay pending and arrive
// when it ends). Create and register a temporary under one.
class InterruptsHeld {
  public:
    InterruptsHeld();
    ~InterruptsHeld();
    InterruptsHeld(const InterruptsHeld&) = delete;
    InterruptsHeld& operator=(const InterruptsHeld&) = delete;

  private:
    sigset_t saved_;
};

// A temporary (a file, or a directory removed with its contents) the handler must remove.
// Throws std::length_error if the path is too long or too many are registered at once.
void register_temporary(const std::string& path);
// Forget it: call after it was removed or renamed into place.
void unregister_temporary(const std::string& path);

// The run starts committing its outputs: from now on signals are held until it ends.
void begin_commit();

// The run has its outcome (its outputs committed, or an error about to be reported): a late
// signal, such as mpirun ending the other ranks after one failed, adds no second line and does
// not change the exit code.
void outcome_decided();

}  // namespace ropekit
