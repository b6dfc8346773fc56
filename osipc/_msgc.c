/* One message in or out of a message queue without waiting, in one call: the hot paths
 * of mq:// (POSIX) and sysv+mq:// (System V).
 *
 * posix_ipc and sysv_ipc stay the bindings that create, open, remove and wait on the
 * queues; this file only tries once (O_NONBLOCK, IPC_NOWAIT) and applies osipc's
 * wire rule on the way: unless ``raw``, a payload that is empty or starts with 0xC1 gets
 * one 0xC1 escape byte in front, and a zero-length message is the end of the stream.
 * A send returns True (sent), False (the queue is full: the caller waits) or None
 * (anything else: the Python path finds out, e.g. a message too large); a receive returns
 * (payload, tag) or None (nothing there, or nothing this file can take). Only an error
 * of the queue itself (removed, closed) raises OSError, which the transports map.
 *
 * The mq:// calls also wait (``seconds``: -1 no limit, 0 one try): in poll() with the
 * GIL released, as the Python path would, a signal's handler running at once (its
 * exception propagates; otherwise the wait goes on with the time left). Once the queue
 * is ready they return the seconds left (-1: no limit) instead of trying again: another
 * thread may have closed the handle meanwhile, and its descriptor number may now be
 * another queue's, so the caller re-reads it and calls again with that time. The sysv+mq calls never
 * wait: sysv_ipc's blocking calls already release the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ESCAPE 0xC1
#define STACK 8192 /* fs.mqueue.msgsize_max and kernel.msgmax by default */

/* A buffer of ``size`` bytes: ``stack`` when it fits, else the heap (NULL: MemoryError). */
static char *scratch(char *stack, size_t size) {
    if (size <= STACK + sizeof(long) + 1)
        return stack;
    char *heap = PyMem_Malloc(size);
    if (heap == NULL)
        PyErr_NoMemory();
    return heap;
}

static void unscratch(char *stack, char *buffer) {
    if (buffer != stack)
        PyMem_Free(buffer);
}

static int is_busy(int error) {
    return error == EAGAIN || error == ETIMEDOUT || error == ENOMSG;
}

/* The payload as osipc frames it: (escape byte or not) + bytes. -1: not a byte buffer
 * (the Python path reports it). */
static int frame_of(PyObject *frame, Py_buffer *view, int raw, int *escape) {
    if (PyObject_GetBuffer(frame, view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return -1;
    }
    *escape = !raw && (view->len == 0 || ((unsigned char *)view->buf)[0] == ESCAPE);
    return 0;
}

/* (payload, tag) of a received message, unescaped: payload None = end of stream */
static PyObject *received(const char *data, Py_ssize_t size, int raw, long tag) {
    if (!raw) {
        if (size == 0)
            return Py_BuildValue("(Ol)", Py_None, tag);
        if ((unsigned char)data[0] == ESCAPE) {
            data++;
            size--;
        }
    }
    return Py_BuildValue("(y#l)", data, size, tag);
}

/* -- POSIX message queues ------------------------------------------------------------- */

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Wait until ``fd`` shows ``events`` or ``deadline`` (monotonic seconds; < 0: none)
 * passes: 1 ready, 0 timed out, -1 error (set: a signal handler raised, poll failed). */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            double left = deadline - monotonic();
            if (left <= 0)
                return 0;
            ms = left * 1000 >= INT_MAX - 1 ? INT_MAX : (int)(left * 1000) + 1; /* never early */
        }
        struct pollfd watch = {fd, events, 0};
        int ready, error;
        Py_BEGIN_ALLOW_THREADS
        ready = poll(&watch, 1, ms);
        error = errno;
        Py_END_ALLOW_THREADS
        if (ready > 0)
            return 1;
        if (ready < 0 && error == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
        } else if (ready < 0) {
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
}

static double deadline_of(double seconds) {
    return seconds < 0 ? -1 : monotonic() + seconds;
}

/* The seconds left before ``deadline`` (-1: none; never below 0), as a float. */
static PyObject *time_left(double deadline) {
    if (deadline < 0)
        return PyFloat_FromDouble(-1);
    double left = deadline - monotonic();
    return PyFloat_FromDouble(left > 0 ? left : 0);
}

static PyObject *new_ref(PyObject *object) { /* Py_NewRef, which 3.9 lacks */
    Py_INCREF(object);
    return object;
}

/* The descriptor must be O_NONBLOCK (posix_ipc's ``block = False``): then a full or an
 * empty queue is EAGAIN at once. (A zero timeout would do on any descriptor, but costs
 * the kernel's timeout handling on every call: ~0.2 us here.) */

/* mq_send(mqd, frame, priority, raw, limit, seconds) -> True | False | float | None:
 * sent; the queue stayed full for ``seconds``; it has room now (call again with the
 * seconds returned); the Python path's (see the top). */
static PyObject *mq_send(PyObject *module, PyObject *args) {
    int mqd, raw;
    unsigned int priority;
    Py_ssize_t limit;
    PyObject *frame;
    Py_buffer view;
    int escape;
    double seconds;
    char stack[STACK + sizeof(long) + 1];
    if (!PyArg_ParseTuple(args, "iOIpnd", &mqd, &frame, &priority, &raw, &limit, &seconds))
        return NULL;
    if (frame_of(frame, &view, raw, &escape) < 0)
        Py_RETURN_NONE;
    Py_ssize_t size = view.len + escape;
    if (size > limit) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    const char *out = view.buf;
    char *buffer = NULL;
    if (escape) {
        buffer = scratch(stack, (size_t)size);
        if (buffer == NULL) {
            PyBuffer_Release(&view);
            return NULL;
        }
        buffer[0] = (char)ESCAPE;
        memcpy(buffer + 1, view.buf, (size_t)view.len);
        out = buffer;
    }
    PyObject *result = NULL;
    long done = syscall(SYS_mq_timedsend, mqd, out, (size_t)size, priority, NULL);
    int error = errno;
    if (done == 0) {
        result = new_ref(Py_True);
    } else if (error == EAGAIN) {
        double deadline = deadline_of(seconds);
        int ready = seconds == 0 ? 0 : wait_fd(mqd, POLLOUT, deadline);
        result = ready > 0 ? time_left(deadline) : ready == 0 ? new_ref(Py_False) : NULL;
    } else if (error == EMSGSIZE || error == EINTR || error == ETIMEDOUT) {
        result = new_ref(Py_None);
    } else {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    if (buffer != NULL)
        unscratch(stack, buffer);
    PyBuffer_Release(&view);
    return result;
}

/* mq_recv(mqd, msgsize, raw, seconds) -> (payload | None, priority) | False | float |
 * None: a message; none for ``seconds``; one is there now (call again with the seconds
 * returned); the Python path's (see the top). */
static PyObject *mq_recv(PyObject *module, PyObject *args) {
    int mqd, raw;
    Py_ssize_t msgsize;
    double seconds;
    char stack[STACK + sizeof(long) + 1];
    if (!PyArg_ParseTuple(args, "inpd", &mqd, &msgsize, &raw, &seconds))
        return NULL;
    if (msgsize < 0)
        msgsize = 0;
    char *buffer = scratch(stack, (size_t)msgsize);
    if (buffer == NULL)
        return NULL;
    PyObject *result = NULL;
    unsigned int priority = 0;
    long size = syscall(SYS_mq_timedreceive, mqd, buffer, (size_t)msgsize, &priority, NULL);
    int error = errno;
    if (size >= 0) {
        result = received(buffer, (Py_ssize_t)size, raw, (long)priority);
    } else if (error == EAGAIN) {
        double deadline = deadline_of(seconds);
        int ready = seconds == 0 ? 0 : wait_fd(mqd, POLLIN, deadline);
        result = ready > 0 ? time_left(deadline) : ready == 0 ? new_ref(Py_False) : NULL;
    } else if (error == EINTR || error == EMSGSIZE || error == ETIMEDOUT) {
        result = new_ref(Py_None);
    } else {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
    }
    unscratch(stack, buffer);
    return result;
}

/* -- System V message queues --------------------------------------------------------- */

/* msg_send(msqid, mtype, frame, raw, limit) -> True | False | None (see the top). */
static PyObject *msg_send(PyObject *module, PyObject *args) {
    int msqid, raw;
    long mtype;
    Py_ssize_t limit;
    PyObject *frame;
    Py_buffer view;
    int escape;
    char stack[STACK + sizeof(long) + 1];
    if (!PyArg_ParseTuple(args, "ilOpn", &msqid, &mtype, &frame, &raw, &limit))
        return NULL;
    if (frame_of(frame, &view, raw, &escape) < 0)
        Py_RETURN_NONE;
    Py_ssize_t size = view.len + escape;
    if (size > limit || mtype < 1) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    char *buffer = scratch(stack, sizeof(long) + (size_t)size);
    if (buffer == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(buffer, &mtype, sizeof(long));
    if (escape)
        buffer[sizeof(long)] = (char)ESCAPE;
    memcpy(buffer + sizeof(long) + escape, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    int done = msgsnd(msqid, buffer, (size_t)size, IPC_NOWAIT);
    int error = errno;
    unscratch(stack, buffer);
    if (done == 0)
        Py_RETURN_TRUE;
    if (error == EAGAIN)
        Py_RETURN_FALSE;
    if (error == EINTR)
        Py_RETURN_NONE;
    errno = error;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* msg_recv(msqid, type_filter, maxsize, raw) -> (payload | None, type) | None: None if
 * no message matches now, or the next one exceeds ``maxsize`` (the Python path's). */
static PyObject *msg_recv(PyObject *module, PyObject *args) {
    int msqid, raw;
    long filter;
    Py_ssize_t maxsize;
    char stack[STACK + sizeof(long) + 1];
    if (!PyArg_ParseTuple(args, "ilnp", &msqid, &filter, &maxsize, &raw))
        return NULL;
    if (maxsize < 0)
        maxsize = 0;
    char *buffer = scratch(stack, sizeof(long) + (size_t)maxsize);
    if (buffer == NULL)
        return NULL;
    ssize_t size = msgrcv(msqid, buffer, (size_t)maxsize, filter, IPC_NOWAIT);
    int error = errno;
    PyObject *result;
    if (size >= 0) {
        long mtype;
        memcpy(&mtype, buffer, sizeof(long));
        result = received(buffer + sizeof(long), (Py_ssize_t)size, raw, mtype);
    } else if (is_busy(error) || error == EINTR || error == E2BIG) {
        result = new_ref(Py_None);
    } else {
        errno = error;
        result = PyErr_SetFromErrno(PyExc_OSError);
    }
    unscratch(stack, buffer);
    return result;
}

static PyMethodDef methods[] = {
    {"mq_send", mq_send, METH_VARARGS,
     "mq_send(mqd, frame, priority, raw, limit, seconds) -> True | False | Ellipsis | None"},
    {"mq_recv", mq_recv, METH_VARARGS,
     "mq_recv(mqd, msgsize, raw, seconds) -> (payload | None, priority) | False | Ellipsis | None"},
    {"msg_send", msg_send, METH_VARARGS,
     "msg_send(msqid, mtype, frame, raw, limit) -> bool: sent without waiting"},
    {"msg_recv", msg_recv, METH_VARARGS,
     "msg_recv(msqid, type_filter, maxsize, raw) -> (payload | None, type) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "osipc._msgc",
    "mq:// and sysv+mq:// send and receive in one call, in C (optional).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__msgc(void) {
    return PyModule_Create(&module);
}
