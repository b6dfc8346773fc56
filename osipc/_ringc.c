/* The queue ring's uncontended paths in C: osipc/_ring.py's fast paths, one call each.
 *
 * _ring.py owns the format, the slow paths (waiting, dead-holder takeover, broadcast,
 * end-of-stream records) and the reasons behind every rule; this file repeats only what
 * one message costs when the lock is free and there is room (or data): take the lock,
 * write (read) records, commit head (tail) with one release store, bump the counters,
 * release, wake sleepers whose flags are up. Any other case returns "not here" and the
 * caller takes the Python path, which handles it all.
 *
 * Every call holds the GIL from taking a ring lock to releasing it, and runs no Python
 * code in between (frames must be exact bytes, bytearray or memoryview, whose buffers are
 * C's; payloads are new bytes objects, which never start a garbage collection), so no
 * other thread of this process can see a lock this file holds: that is what lets it skip
 * the handle's threading.Lock (a thread of the same handle that is inside the Python path
 * has its claim up, and then this file steps aside). The GIL is released only to sleep
 * (futex), holding no lock and touching no memory of the ring until it is back. For the
 * same reason the module must never declare Py_MOD_GIL_NOT_USED: free-threaded builds
 * re-enable the GIL when they import it.
 *
 * The layout constants are checked against _ring.py at import (LAYOUT): a mismatch
 * turns this module off instead of corrupting rings.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* byte offsets of the shared words (see _ring.py) */
#define OFF_HEAD 64
#define OFF_TX_GEN 72
#define OFF_PRODUCED 80
#define OFF_TAIL 128
#define OFF_RX_GEN 136
#define OFF_CONSUMED 144
#define OFF_FLAG_DATA 192
#define OFF_FLAG_SPACE 196
#define OFF_FLAG_TX 200
#define OFF_FLAG_RX 204
#define REC_HEADER 8
#define REC_DATA 1
#define CLAIM_TX 1
#define CLAIM_RX 2
#define PROTOCOL 4 /* bump with any change of the locking or commit order */

#define WORD(base, off) ((uint64_t *)((base) + (off)))
#define HALF(base, off) ((uint32_t *)((base) + (off)))

/* -- locks ------------------------------------------------------------------------- */

/* One of the ring's two locks: a process-shared POSIX semaphore (the sem_t* of a
 * _multiprocessing.SemLock, or one inside a SysV segment), made robust by the claim in
 * this handle's slot. */
typedef struct {
    PyObject *owner;  /* keeps the semaphore's owner (and so its sem_t) alive */
    sem_t *sem;
    long claim;       /* byte offset of this handle's claim word */
    uint32_t value;   /* what the claim holds while this handle wants the lock */
    long gen;         /* byte offset of the lock's generation word */
    long flag;        /* byte offset of the lock waiters' flag */
    uint64_t stamp;   /* the last stamp stored in ``gen`` (see stamp()) */
    uint64_t tag;     /* this handle's slot << 1, with the low bit set (the C part's) */
} Lock;

/* A value for the generation word that no store ever wrote before (as _ring.py's
 * ClaimLock.stamp, whose stamps have the low bit clear): a release that stores one, rather
 * than adding 1, can never put back a value a waiter already read. */
static uint64_t stamp(Lock *lock) {
    return (++lock->stamp << 13) | lock->tag;
}

static int lock_try(char *base, Lock *lock) {
    uint32_t *claim = HALF(base, lock->claim);
    if (__atomic_load_n(claim, __ATOMIC_RELAXED) != 0)
        return 0; /* another thread of this handle is in the Python path */
    __atomic_store_n(claim, lock->value, __ATOMIC_SEQ_CST);
    if (sem_trywait(lock->sem) == 0)
        return 1;
    __atomic_store_n(claim, 0, __ATOMIC_RELAXED);
    return 0;
}

static void futex_wake(void *address) {
    syscall(SYS_futex, address, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Release: post, then move the generation, then drop the claim, in that order (as
 * _ring.py's ClaimLock.release): a waiter that sees the claim gone then also sees the
 * generation moved, and never mistakes a lock released under its eyes for a dead
 * holder's. Then wake whoever raised a flag: the lock's waiters, and, after a commit,
 * (``wake_flag``, ``wake_word``) the other side's sleepers, whose flag the waker clears.
 * -1 (errno set) if the semaphore is gone; the claim is dropped all the same. */
static int lock_release(char *base, Lock *lock, int committed, long wake_flag, long wake_word) {
    int failed = sem_post(lock->sem) != 0;
    __atomic_store_n(WORD(base, lock->gen), stamp(lock), __ATOMIC_SEQ_CST);
    __atomic_store_n(HALF(base, lock->claim), 0, __ATOMIC_RELEASE);
    if (failed)
        return -1;
    /* the release is a full barrier (a locked instruction); the fence
     * says so: a sleeper's flag raised before it is visible below */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (committed && __atomic_load_n(HALF(base, wake_flag), __ATOMIC_RELAXED)) {
        __atomic_store_n(HALF(base, wake_flag), 0, __ATOMIC_RELAXED);
        futex_wake(base + wake_word);
    }
    if (__atomic_load_n(HALF(base, lock->flag), __ATOMIC_RELAXED))
        futex_wake(base + lock->gen);
    return 0;
}

static int lock_init(Lock *lock, PyObject *spec, long gen, long flag) {
    /* spec: (semaphore with an int ``handle``: its sem_t*, claim_offset, claim_value) */
    memset(lock, 0, sizeof(*lock));
    lock->gen = gen;
    lock->flag = flag;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 3)
        goto bad;
    PyObject *handle = PyObject_GetAttrString(PyTuple_GET_ITEM(spec, 0), "handle");
    if (handle == NULL)
        return -1;
    lock->sem = (sem_t *)PyLong_AsVoidPtr(handle);
    Py_DECREF(handle);
    lock->claim = PyLong_AsLong(PyTuple_GET_ITEM(spec, 1));
    lock->value = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(spec, 2));
    if (PyErr_Occurred())
        return -1;
    lock->owner = PyTuple_GET_ITEM(spec, 0);
    Py_INCREF(lock->owner);
    return 0;
bad:
    PyErr_SetString(PyExc_TypeError, "lock spec: (semaphore, claim, value)");
    return -1;
}

/* -- the handle ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer map;      /* the whole segment; released by release() */
    int mapped;
    char *base;
    char *data;         /* the data area */
    uint64_t cap;
    Lock tx, rx;
    uint64_t tail_seen; /* producer: a lower bound of the tail */
    uint64_t head_seen; /* consumer: a lower bound of the head */
    uint64_t tail_last; /* consumer: a lower bound of the tail (the last one it saw) */
    int sleepers;       /* threads in recv_block's sleep (counted with the GIL held) */
    pid_t pid;          /* the process that made this handle (a forked copy has no sleepers) */
} Ring;

static int Ring_init(Ring *self, PyObject *args, PyObject *kwds) {
    PyObject *buffer, *tx, *rx;
    Py_ssize_t data;
    unsigned long long cap, tag, seed;
    static char *kwlist[] = {"buffer", "data", "capacity", "tx", "rx", "tag", "seed", NULL};
    if (self->mapped) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnKOOKK", kwlist, &buffer, &data, &cap, &tx, &rx,
                                     &tag, &seed))
        return -1;
    if (!(tag & 1) || tag >= 1 << 13) {
        PyErr_SetString(PyExc_ValueError, "tag: a slot << 1 | 1 below 8192");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->map, PyBUF_WRITABLE) < 0)
        return -1;
    self->mapped = 1;
    if (cap == 0 || cap % 16 != 0 || data < OFF_FLAG_RX + 4 || (uint64_t)data > (uint64_t)self->map.len ||
        cap > (uint64_t)self->map.len - (uint64_t)data) {
        PyErr_SetString(PyExc_ValueError, "ring layout does not fit the buffer");
        return -1;
    }
    self->base = self->map.buf;
    self->data = self->base + data;
    self->cap = cap;
    if (lock_init(&self->tx, tx, OFF_TX_GEN, OFF_FLAG_TX) < 0 ||
        lock_init(&self->rx, rx, OFF_RX_GEN, OFF_FLAG_RX) < 0)
        return -1;
    Lock *locks[2] = {&self->tx, &self->rx};
    for (int i = 0; i < 2; i++) {
        locks[i]->tag = tag;
        locks[i]->stamp = seed;
        long claim = locks[i]->claim;
        if (claim != -1 && (claim < 0 || claim % 4 != 0 || claim + 4 > data)) {
            PyErr_SetString(PyExc_ValueError, "a claim offset outside the slot table");
            return -1;
        }
    }
    self->pid = getpid();
    return 0;
}

static void Ring_drop(Ring *self) {
    if (self->mapped) {
        PyBuffer_Release(&self->map);
        self->mapped = 0;
    }
    Py_CLEAR(self->tx.owner);
    Py_CLEAR(self->rx.owner);
}

static void Ring_dealloc(Ring *self) {
    Ring_drop(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Ring_release(Ring *self, PyObject *Py_UNUSED(ignored)) {
    /* Wake this handle's sleepers (the wake reaches every sleeper on the ring, which
     * re-checks and sleeps again): they find it released and raise. One that was about
     * to sleep misses it and sees the release after its slice. */
    if (self->mapped && self->sleepers > 0 && self->pid == getpid())
        futex_wake(self->base + OFF_HEAD);
    Ring_drop(self);
    Py_RETURN_NONE;
}

static PyObject *released(void) {
    PyErr_SetString(PyExc_ValueError, "the ring was released");
    return NULL;
}

static PyObject *release_failed(void) {
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* copy into / out of the data area at ``position``, wrapping at its end */
static void put(Ring *self, uint64_t position, const char *from, uint64_t size) {
    uint64_t offset = position % self->cap, first = self->cap - offset;
    if (size <= first) {
        memcpy(self->data + offset, from, size);
    } else {
        memcpy(self->data + offset, from, first);
        memcpy(self->data, from + first, size - first);
    }
}

static void get(Ring *self, uint64_t position, char *to, uint64_t size) {
    uint64_t offset = position % self->cap, first = self->cap - offset;
    if (size <= first) {
        memcpy(to, self->data + offset, size);
    } else {
        memcpy(to, self->data + offset, first);
        memcpy(to + first, self->data, size - first);
    }
}

/* Frames whose buffer is C's alone: no Python code runs to get or release it. */
static int plain(PyObject *frame) {
    return PyBytes_CheckExact(frame) || PyByteArray_CheckExact(frame) || PyMemoryView_Check(frame);
}

/* Append ``frames[start:]`` (a list; or ``single`` when frames is NULL) as far as they
 * fit, in one lock round. Returns how many were committed, 0 when the lock is busy or the
 * first does not fit, -1 (errno set) when the release failed. A frame that is not a byte
 * buffer stops the batch there: the Python path reports it. */
static Py_ssize_t append(Ring *self, PyObject *frames, PyObject *single, Py_ssize_t start) {
    char *base = self->base;
    if (frames == NULL ? !plain(single) : (start >= PyList_GET_SIZE(frames) ||
                                           !plain(PyList_GET_ITEM(frames, start))))
        return 0; /* nothing for this file: no lock round for it */
    if (!lock_try(base, &self->tx))
        return 0;
    uint64_t head = __atomic_load_n(WORD(base, OFF_HEAD), __ATOMIC_RELAXED);
    Py_ssize_t sent = 0;
    for (;;) {
        PyObject *item = single;
        if (frames != NULL) {
            if (start + sent >= PyList_GET_SIZE(frames))
                break;
            item = PyList_GET_ITEM(frames, start + sent);
        } else if (sent) {
            break;
        }
        Py_buffer frame;
        if (!plain(item))
            break; /* the Python path takes it from here */
        if (PyObject_GetBuffer(item, &frame, PyBUF_SIMPLE) < 0) {
            PyErr_Clear(); /* (a non-contiguous memoryview) */
            break;
        }
        uint64_t size = (uint64_t)frame.len, need = (size + 15) & ~(uint64_t)7;
        if (size > UINT32_MAX) { /* a record's size is 32 bits; _ring.py's limit says so */
            PyBuffer_Release(&frame);
            break;
        }
        if (head + need - self->tail_seen > self->cap)
            self->tail_seen = __atomic_load_n(WORD(base, OFF_TAIL), __ATOMIC_ACQUIRE);
        if (head + need - self->tail_seen > self->cap) {
            PyBuffer_Release(&frame);
            break;
        }
        uint32_t record[2] = {(uint32_t)size, REC_DATA};
        memcpy(self->data + head % self->cap, record, REC_HEADER); /* never wraps: 8-aligned */
        put(self, head + REC_HEADER, frame.buf, size);
        PyBuffer_Release(&frame);
        head += need;
        sent++;
    }
    if (sent) {
        __atomic_store_n(WORD(base, OFF_HEAD), head, __ATOMIC_RELEASE); /* the commit */
        __atomic_add_fetch(WORD(base, OFF_PRODUCED), (uint64_t)sent, __ATOMIC_RELEASE);
    }
    if (lock_release(base, &self->tx, sent != 0, OFF_FLAG_DATA, OFF_HEAD) < 0)
        return -1;
    return sent;
}

static PyObject *Ring_send(Ring *self, PyObject *frame) {
    if (!self->mapped)
        return released();
    Py_ssize_t sent = append(self, NULL, frame, 0);
    if (sent < 0)
        return release_failed();
    return PyBool_FromLong(sent);
}

static PyObject *Ring_send_many(Ring *self, PyObject *args) {
    PyObject *frames;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &frames, &start))
        return NULL;
    if (!self->mapped)
        return released();
    if (start < 0) {
        PyErr_SetString(PyExc_IndexError, "start out of range");
        return NULL;
    }
    Py_ssize_t sent = append(self, frames, NULL, start);
    if (sent < 0)
        return release_failed();
    return PyLong_FromSsize_t(sent);
}

enum { TAKEN, EMPTY, ELSEWHERE }; /* what a take found; ELSEWHERE: the Python path's */

/* Take the consumers' lock if there may be data: TAKEN (``*tail``, ``*head`` set, the
 * lock held), EMPTY (nothing past the tail: surely, or seen under the lock) or ELSEWHERE
 * (the lock is busy). */
static int begin_take(Ring *self, uint64_t *tail, uint64_t *head) {
    char *base = self->base;
    if (self->head_seen <= self->tail_last) {
        uint64_t now = __atomic_load_n(WORD(base, OFF_HEAD), __ATOMIC_ACQUIRE);
        if (now <= self->tail_last)
            return EMPTY; /* surely: the tail only grows */
        self->head_seen = now;
    }
    if (!lock_try(base, &self->rx))
        return ELSEWHERE;
    *tail = __atomic_load_n(WORD(base, OFF_TAIL), __ATOMIC_RELAXED);
    if (self->head_seen <= *tail)
        self->head_seen = __atomic_load_n(WORD(base, OFF_HEAD), __ATOMIC_ACQUIRE);
    *head = self->head_seen;
    self->tail_last = *tail;
    return TAKEN;
}

static int end_take(Ring *self, uint64_t tail, uint64_t taken) {
    char *base = self->base;
    if (taken) {
        __atomic_store_n(WORD(base, OFF_TAIL), tail, __ATOMIC_RELEASE); /* the commit */
        __atomic_add_fetch(WORD(base, OFF_CONSUMED), taken, __ATOMIC_RELEASE);
        self->tail_last = tail;
    }
    return lock_release(base, &self->rx, taken != 0, OFF_FLAG_SPACE, OFF_TAIL);
}

/* The record at ``position`` if it is a whole data record before ``head``: 1 and its
 * size; 0 for anything else (an end-of-stream record, or a corrupt size that would read
 * past the ring: the Python path reports it as Broken). */
static int data_record(Ring *self, uint64_t position, uint64_t head, uint32_t *size) {
    uint32_t record[2];
    memcpy(record, self->data + position % self->cap, REC_HEADER);
    *size = record[0];
    return record[1] == REC_DATA && *size <= self->cap - REC_HEADER &&
           position + (((uint64_t)*size + 15) & ~(uint64_t)7) <= head;
}

/* Up to ``max_count`` data records as bytes (a list if ``as_list``), in one lock round,
 * and in ``*found`` whether it took any (NULL if not, or on error) or found the ring
 * empty, or left it to the Python path (the lock is busy, an end-of-stream record is
 * next). */
static PyObject *take(Ring *self, Py_ssize_t max_count, int as_list, int *found) {
    uint64_t tail, head;
    PyObject *out = NULL, *one = NULL;
    *found = ELSEWHERE;
    if (!self->mapped)
        return released();
    if (as_list && (out = PyList_New(0)) == NULL)
        return NULL;
    int state = begin_take(self, &tail, &head);
    if (state != TAKEN) {
        Py_XDECREF(out);
        *found = state;
        return NULL;
    }
    Py_ssize_t taken = 0;
    *found = tail < head ? ELSEWHERE : EMPTY;
    while (tail < head && taken < max_count) {
        uint32_t size;
        if (!data_record(self, tail, head, &size))
            break;
        PyObject *payload = PyBytes_FromStringAndSize(NULL, size);
        if (payload == NULL)
            break; /* MemoryError: commit what was taken; raised if that is nothing */
        get(self, tail + REC_HEADER, PyBytes_AS_STRING(payload), size);
        if (as_list) {
            int appended = PyList_Append(out, payload) == 0;
            Py_DECREF(payload);
            if (!appended)
                break;
        } else {
            one = payload;
        }
        tail += ((uint64_t)size + 15) & ~(uint64_t)7;
        taken++;
    }
    /* The lock goes back whatever happened: end_take calls no Python API, so a
     * MemoryError raised above stays set meanwhile. */
    if (end_take(self, tail, (uint64_t)taken) < 0) {
        int saved = errno;
        Py_XDECREF(out);
        Py_XDECREF(one);
        PyErr_Clear();
        errno = saved;
        *found = ELSEWHERE;
        return release_failed();
    }
    if (taken == 0) {
        Py_XDECREF(out);
        return NULL; /* with the MemoryError set, if that is why */
    }
    PyErr_Clear(); /* a partial batch: deliver it; the next call meets the error anew */
    *found = TAKEN;
    return as_list ? out : one;
}

/* take() as a method result: the records, None if none were taken, NULL on error */
static PyObject *taken_or_none(PyObject *result) {
    if (result == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

static PyObject *Ring_recv(Ring *self, PyObject *Py_UNUSED(ignored)) {
    int found;
    return taken_or_none(take(self, 1, 0, &found));
}

static PyObject *Ring_recv_many(Ring *self, PyObject *arg) {
    int found;
    Py_ssize_t max_count = PyLong_AsSsize_t(arg);
    if (max_count == -1 && PyErr_Occurred())
        return NULL;
    return taken_or_none(take(self, max_count, 1, &found));
}

/* Copy the next data record into ``buffer``: its size, or -1 if not here (empty, lock
 * busy, an end-of-stream record, a buffer too small: the Python path says which). */
static PyObject *Ring_recv_into(Ring *self, PyObject *buffer) {
    uint64_t tail, head;
    Py_buffer target;
    if (!self->mapped)
        return released();
    if (PyObject_GetBuffer(buffer, &target, PyBUF_WRITABLE) < 0)
        return NULL;
    if (!self->mapped) { /* the exporter's Python code may have closed the handle */
        PyBuffer_Release(&target);
        return released();
    }
    long result = -1;
    if (begin_take(self, &tail, &head) == TAKEN) {
        uint64_t taken = 0;
        if (tail < head) {
            uint32_t size;
            if (data_record(self, tail, head, &size) && size <= (uint64_t)target.len) {
                get(self, tail + REC_HEADER, target.buf, size);
                tail += ((uint64_t)size + 15) & ~(uint64_t)7;
                taken = 1;
                result = (long)size;
            }
        }
        if (end_take(self, tail, taken) < 0) {
            PyBuffer_Release(&target);
            return release_failed();
        }
    }
    PyBuffer_Release(&target);
    return PyLong_FromLong(result);
}

/* -- waiting ---------------------------------------------------------------------------- */

/* The header word a sleeper watches, or NULL (ValueError set) if ``offset`` is not one. */
static uint64_t *watched(Ring *self, Py_ssize_t offset) {
    if (!self->mapped) {
        released();
        return NULL;
    }
    if (offset < 0 || offset % 8 != 0 || self->base + offset + 8 > self->data) {
        PyErr_SetString(PyExc_ValueError, "not a header word");
        return NULL;
    }
    return WORD(self->base, offset);
}

/* Poll the word until it differs from ``seen``, at most ``seconds``: 1 if it moved. The
 * GIL stays held (the mapping must outlive the loop), so this is for the opt-in spin= of
 * a few microseconds; a sched_yield every few polls lets a peer on this same CPU run. */
static int spin_until(uint64_t *word, uint64_t seen, double seconds) {
    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)seconds;
    until.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (unsigned polls = 1;; polls++) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seen)
            return 1;
        if (polls % 64 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > until.tv_sec ||
                (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
                return 0;
            sched_yield();
        }
        __builtin_ia32_pause();
    }
}

/* Sleep (GIL released) while the word's low 32 bits hold ``seen``'s, at most ``seconds``;
 * returns on a change, a wake-up, the timeout or a signal, whose handler runs first:
 * -1 if it raised, 1 if the time ran out, else 0. x86-64 is little-endian: the low half
 * is the word's first 4 bytes. The kernel keeps no pointer into the mapping while it
 * sleeps. */
static int futex_sleep(uint64_t *word, uint64_t seen, double seconds) {
    if (seconds < 0)
        seconds = 0;
    struct timespec timeout = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    long done;
    int error;
    Py_BEGIN_ALLOW_THREADS
    done = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, (uint32_t)seen, &timeout, NULL, 0);
    error = errno;
    Py_END_ALLOW_THREADS
    if (done != 0 && error == EINTR && PyErr_CheckSignals() < 0)
        return -1;
    return done != 0 && error == ETIMEDOUT;
}

/* spin(offset, seen, seconds) -> bool and wait(offset, seen, seconds) -> None: the two
 * halves of _ring.py's _sleep on a header word, for the waits it keeps. */
static PyObject *Ring_spin(Ring *self, PyObject *args) {
    Py_ssize_t offset;
    unsigned long long seen;
    double seconds;
    if (!PyArg_ParseTuple(args, "nKd", &offset, &seen, &seconds))
        return NULL;
    uint64_t *word = watched(self, offset);
    if (word == NULL)
        return NULL;
    return PyBool_FromLong(spin_until(word, seen, seconds));
}

static PyObject *Ring_wait(Ring *self, PyObject *args) {
    Py_ssize_t offset;
    unsigned long long seen;
    double seconds;
    if (!PyArg_ParseTuple(args, "nKd", &offset, &seen, &seconds))
        return NULL;
    uint64_t *word = watched(self, offset);
    if (word == NULL || futex_sleep(word, seen, seconds) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* recv_block(spin, until, slice) -> bytes | None | False: the next data record, waiting
 * for one until ``until`` (time.monotonic()'s clock; < 0: no limit; already past: one try
 * that neither spins nor raises the flag). It spins up to ``spin`` seconds before its
 * first sleep and after each sleep a wake-up ended (not after one that only timed out),
 * and sleeps ``slice`` at most at a time: a wake-up the waker's flag clearing raced with
 * is then late by a slice at most, as in _ring.py's waits, and signal handlers run
 * within a slice (a signal may come without interrupting the sleep: while spinning,
 * before the sleep began, or delivered to another thread). None: the Python path's (the
 * lock is busy, an end-of-stream record is next); False: the time is up.
 *
 * The whole wait is here, so the caller needs no waiting-call bookkeeping: the mapping is
 * touched only with the GIL held and after take()'s check that it is still there, and
 * while the GIL is released for the sleep the thread only waits in the kernel, which
 * holds no reference into the mapping (a futex on a shared mapping is keyed by file and
 * offset: on an unmapped address it fails at once). A release() meanwhile (close() from
 * another thread) wakes the sleepers, or they see it within a slice; the next take()
 * then raises ValueError, as for any call after release(). */
static PyObject *Ring_recv_block(Ring *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "recv_block(spin, until, slice)");
        return NULL;
    }
    double spin = PyFloat_AsDouble(args[0]);
    double until = PyFloat_AsDouble(args[1]);
    double slice = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred())
        return NULL;
    int found, spun = 0;
    for (;;) {
        PyObject *got = take(self, 1, 0, &found);
        if (got != NULL || PyErr_Occurred())
            return got;
        if (found == ELSEWHERE)
            Py_RETURN_NONE;
        double left = until < 0 ? slice : until - monotonic();
        if (left <= 0)
            Py_RETURN_FALSE;
        uint64_t *head = WORD(self->base, OFF_HEAD);
        uint64_t seen = __atomic_load_n(head, __ATOMIC_ACQUIRE);
        if (seen > self->tail_last)
            continue; /* committed meanwhile */
        /* Spin before raising the flag: producers wake only flagged sleepers, so a
         * spinner costs them no system call. */
        if (spin > 0 && !spun) {
            spun = 1;
            spin_until(head, seen, (until < 0 || spin < left) ? spin : left);
            if (PyErr_CheckSignals() < 0)
                return NULL;
            continue; /* take what came, or see the time left */
        }
        if (left > slice)
            left = slice;
        __atomic_store_n(HALF(self->base, OFF_FLAG_DATA), 1, __ATOMIC_SEQ_CST);
        seen = __atomic_load_n(head, __ATOMIC_SEQ_CST);
        if (seen > self->tail_last)
            continue; /* committed while the flag went up */
        self->sleepers++;
        int slept = futex_sleep(head, seen, left);
        self->sleepers--;
        if (slept < 0 || PyErr_CheckSignals() < 0)
            return NULL; /* a signal handler raised */
        spun = slept == 1; /* timed out: nothing moved, so no spin before the next sleep */
    }
}

/* recv_spin(spin) -> bytes | None | False: recv_block's spin without its sleep. The GIL
 * stays held throughout, so no other thread can close the handle meanwhile: the caller
 * needs no waiting-call bookkeeping for it (a round trip's receiver finds its message
 * here, and returns without a Deadline or a lock round in Python). */
static PyObject *Ring_recv_spin(Ring *self, PyObject *arg) {
    int found;
    double spin = PyFloat_AsDouble(arg);
    if (spin == -1.0 && PyErr_Occurred())
        return NULL;
    if (!self->mapped)
        return released();
    uint64_t *head = WORD(self->base, OFF_HEAD);
    uint64_t seen = __atomic_load_n(head, __ATOMIC_ACQUIRE);
    if (seen <= self->tail_last && !(spin > 0 && spin_until(head, seen, spin)))
        Py_RETURN_FALSE;
    PyObject *got = take(self, 1, 0, &found);
    if (got != NULL || PyErr_Occurred())
        return got;
    if (found == ELSEWHERE)
        Py_RETURN_NONE;
    Py_RETURN_FALSE;
}

static PyMethodDef Ring_methods[] = {
    {"spin", (PyCFunction)Ring_spin, METH_VARARGS,
     "spin(offset, seen, seconds) -> bool: the header word moved while spinning"},
    {"wait", (PyCFunction)Ring_wait, METH_VARARGS,
     "wait(offset, seen, seconds) -> None: futex-sleep while the header word holds seen"},
    {"send", (PyCFunction)Ring_send, METH_O,
     "send(frame) -> bool: appended and committed; False: take the Python path"},
    {"send_many", (PyCFunction)Ring_send_many, METH_VARARGS,
     "send_many(frames, start) -> int: how many from frames[start:] were committed"},
    {"recv", (PyCFunction)Ring_recv, METH_NOARGS,
     "recv() -> bytes | None: the next data record; None: take the Python path"},
    {"recv_block", (PyCFunction)(void (*)(void))Ring_recv_block, METH_FASTCALL,
     "recv_block(spin, until, slice) -> bytes | None | False: the next record, waiting"},
    {"recv_spin", (PyCFunction)Ring_recv_spin, METH_O,
     "recv_spin(spin) -> bytes | None | False: the next record if one comes within spin"},
    {"recv_many", (PyCFunction)Ring_recv_many, METH_O,
     "recv_many(max_count) -> list[bytes] | None: data records in one lock round"},
    {"recv_into", (PyCFunction)Ring_recv_into, METH_O,
     "recv_into(buffer) -> int: size copied into buffer; -1: take the Python path"},
    {"release", (PyCFunction)Ring_release, METH_NOARGS,
     "release(): drop the mapping's buffer and the semaphores; later calls raise"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "osipc._ringc.Ring",
    .tp_basicsize = sizeof(Ring),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A queue ring's uncontended send and receive paths (see osipc/_ring.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ring_init,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_methods = Ring_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "osipc._ringc",
    "The queue ring's uncontended paths in C (optional: osipc/_ring.py works without).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__ringc(void) {
    if (PyType_Ready(&RingType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *layout = Py_BuildValue(
        "(iiiiiiiiiiiiiii)", PROTOCOL, OFF_HEAD, OFF_TX_GEN, OFF_PRODUCED, OFF_TAIL, OFF_RX_GEN,
        OFF_CONSUMED, OFF_FLAG_DATA, OFF_FLAG_SPACE, OFF_FLAG_TX, OFF_FLAG_RX, REC_HEADER,
        REC_DATA, CLAIM_TX, CLAIM_RX);
    if (layout == NULL || PyModule_AddObject(m, "LAYOUT", layout) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RingType);
    if (PyModule_AddObject(m, "Ring", (PyObject *)&RingType) < 0) {
        Py_DECREF(&RingType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
