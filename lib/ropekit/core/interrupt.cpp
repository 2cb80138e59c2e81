#include "ropekit/core/interrupt.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace ropekit {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
constexpr std::size_t kSlots = 32;  // a run holds a few temporaries at a time
constexpr std::size_t kPathBytes = 4096;
constexpr int kMaxDepth = 16;  // of a temporary directory's tree

struct Slot {
    std::atomic<bool> used{false};
    char path[kPathBytes];
};

Slot g_slots[kSlots];
std::mutex g_registry_writers;  // registration may come from any thread; the handler never locks
char g_message[512];
std::size_t g_message_length = 0;
pthread_t g_owner;
std::atomic<bool> g_committing{false};

sigset_t interrupt_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kSignals) sigaddset(&set, sig);
    return set;
}

bool is_dot_or_dot_dot(const char* name) {
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// Removes `name` (relative to the directory `dir_fd`) and, for a directory, everything below it.
// Async-signal-safe: system calls only, no allocation.
void remove_tree(int dir_fd, const char* name, int depth) {
    if (::unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT || depth > kMaxDepth) return;
    const int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    alignas(dirent64) char entries[4096];
    for (ssize_t got; (got = ::getdents64(fd, entries, sizeof entries)) > 0;) {
        for (ssize_t offset = 0; offset < got;) {
            const auto* entry = reinterpret_cast<const dirent64*>(entries + offset);
            offset += entry->d_reclen;
            if (!is_dot_or_dot_dot(entry->d_name)) remove_tree(fd, entry->d_name, depth + 1);
        }
    }
    ::close(fd);
    ::unlinkat(dir_fd, name, AT_REMOVEDIR);
}

void on_interrupt(int sig) {
    const int saved_errno = errno;
    if (!::pthread_equal(::pthread_self(), g_owner)) {
        ::pthread_kill(g_owner, sig);  // the owner may be creating a temporary: it holds it back
    } else if (!g_committing.load()) {
        for (Slot& slot : g_slots) {
            if (slot.used.load(std::memory_order_acquire)) remove_tree(AT_FDCWD, slot.path, 0);
        }
        [[maybe_unused]] const ssize_t written =
            ::write(STDERR_FILENO, g_message, g_message_length);
        ::_exit(128 + sig);
    }
    errno = saved_errno;
}

}  // namespace

void install_interrupt_handler(const std::string& tool) {
    const std::string message = tool + ": interrupted; nothing written\n";
    g_message_length = std::min(message.size(), sizeof g_message);
    std::memcpy(g_message, message.data(), g_message_length);
    g_owner = ::pthread_self();
    g_committing.store(false);  // a new run: nothing committed yet
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    action.sa_mask = interrupt_signals();
    action.sa_flags = SA_RESTART;  // a held-back or passed-on signal must not fail a system call
    for (int sig : kSignals) {
        struct sigaction previous {};
        ::sigaction(sig, nullptr, &previous);
        if (sig != SIGPIPE && previous.sa_handler == SIG_IGN) continue;
        ::sigaction(sig, &action, nullptr);
    }
}

InterruptsHeld::InterruptsHeld() {
    const sigset_t set = interrupt_signals();
    ::pthread_sigmask(SIG_BLOCK, &set, &saved_);
}

InterruptsHeld::~InterruptsHeld() {
    ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
}

void register_temporary(const std::string& path) {
    if (path.empty() || path.size() >= kPathBytes) {
        throw std::length_error("temporary path too long to register: " + path);
    }
    const std::lock_guard<std::mutex> lock(g_registry_writers);
    for (Slot& slot : g_slots) {
        if (slot.used.load(std::memory_order_relaxed)) continue;
        std::memcpy(slot.path, path.c_str(), path.size() + 1);
        slot.used.store(true, std::memory_order_release);
        return;
    }
    throw std::length_error("more temporaries at once than the interrupt registry holds");
}

void unregister_temporary(const std::string& path) {
    const std::lock_guard<std::mutex> lock(g_registry_writers);
    for (Slot& slot : g_slots) {
        if (slot.used.load(std::memory_order_relaxed) && path == slot.path) {
            slot.used.store(false, std::memory_order_release);
            return;
        }
    }
}

void begin_commit() {
    g_committing.store(true);
}

void outcome_decided() {
    g_committing.store(true);
}

}  // namespace ropekit
