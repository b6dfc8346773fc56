/* One message in or out of a message queue without waiting, in one call: the hot paths
 * of mq:// (POSIX) and sysv+mq:// (System V), and of a fifo:// send (pipe_send, below).
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
 * None of these calls waits: the transports wait in Python (poll() on the queue and on
 * the handle's wake-up descriptor, so that close() from another thread stops the wait).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/syscall.h>
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
    PyObject *payload;
    if (!raw && size == 0) {
        Py_INCREF(Py_None);
        payload = Py_None;
    } else {
        if (!raw && (unsigned char)data[0] == ESCAPE) {
            data++;
            size--;
        }
        payload = PyBytes_FromStringAndSize(data, size);
        if (payload == NULL)
            return NULL;
    }
    PyObject *number = PyLong_FromLong(tag);
    if (number == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(payload);
        Py_DECREF(number);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, payload);
    PyTuple_SET_ITEM(pair, 1, number);
    return pair;
}

/* -- arguments: every function is METH_FASTCALL (no argument tuple, no format string:
 * a large share of one call's cost at these sizes) ----------------------------------- */

static int arity(const char *name, Py_ssize_t nargs, Py_ssize_t wanted) {
    if (nargs == wanted)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, wanted, nargs);
    return -1;
}

/* integers as "i", "l" and "n" take them: anything with __index__, never a float */
static int long_of(PyObject *arg, long *out) {
    if (PyLong_CheckExact(arg)) { /* the common case, without a new reference */
        *out = PyLong_AsLong(arg);
        return *out == -1 && PyErr_Occurred() ? -1 : 0;
    }
    PyObject *index = PyNumber_Index(arg);
    if (index == NULL)
        return -1;
    *out = PyLong_AsLong(index);
    Py_DECREF(index);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int int_of(PyObject *arg, int *out) {
    long value;
    if (long_of(arg, &value) < 0)
        return -1;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "out of range for a C int");
        return -1;
    }
    *out = (int)value;
    return 0;
}

static int size_of(PyObject *arg, Py_ssize_t *out) {
    *out = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int flag_of(PyObject *arg, int *out) {
    *out = PyObject_IsTrue(arg);
    return *out < 0 ? -1 : 0;
}

/* -- POSIX message queues ------------------------------------------------------------- */

static PyObject *new_ref(PyObject *object) { /* Py_NewRef, which 3.9 lacks */
    Py_INCREF(object);
    return object;
}

/* The descriptor must be O_NONBLOCK (posix_ipc's ``block = False``): then a full or an
 * empty queue is EAGAIN at once. (A zero timeout would do on any descriptor, but costs
 * the kernel's timeout handling on every call: ~0.2 us here.) */

/* mq_send(mqd, frame, priority, raw, limit) -> True | False | None: sent; the queue is
 * full; the Python path's (see the top). */
static PyObject *mq_send(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    int mqd, raw;
    long priority;
    Py_ssize_t limit;
    Py_buffer view;
    int escape;
    char stack[STACK + sizeof(long) + 1];
    if (arity("mq_send", nargs, 5) < 0 || int_of(args[0], &mqd) < 0 ||
        long_of(args[2], &priority) < 0 || flag_of(args[3], &raw) < 0 ||
        size_of(args[4], &limit) < 0)
        return NULL; /* (the caller checked the priority: 0..MQ_PRIO_MAX - 1) */
    PyObject *frame = args[1];
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
    long done = syscall(SYS_mq_timedsend, mqd, out, (size_t)size, (unsigned int)priority, NULL);
    int error = errno;
    if (done == 0) {
        result = new_ref(Py_True);
    } else if (error == EAGAIN) {
        result = new_ref(Py_False);
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

/* mq_recv(mqd, msgsize, raw) -> (payload | None, priority) | False | None: a message;
 * none there; the Python path's (see the top). */
static PyObject *mq_recv(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    int mqd, raw;
    Py_ssize_t msgsize;
    char stack[STACK + sizeof(long) + 1];
    if (arity("mq_recv", nargs, 3) < 0 || int_of(args[0], &mqd) < 0 ||
        size_of(args[1], &msgsize) < 0 || flag_of(args[2], &raw) < 0)
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
        result = new_ref(Py_False);
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
static PyObject *msg_send(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    int msqid, raw;
    long mtype;
    Py_ssize_t limit;
    Py_buffer view;
    int escape;
    char stack[STACK + sizeof(long) + 1];
    if (arity("msg_send", nargs, 5) < 0 || int_of(args[0], &msqid) < 0 ||
        long_of(args[1], &mtype) < 0 || flag_of(args[3], &raw) < 0 ||
        size_of(args[4], &limit) < 0)
        return NULL;
    PyObject *frame = args[2];
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
static PyObject *msg_recv(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    int msqid, raw;
    long filter;
    Py_ssize_t maxsize;
    char stack[STACK + sizeof(long) + 1];
    if (arity("msg_recv", nargs, 4) < 0 || int_of(args[0], &msqid) < 0 ||
        long_of(args[1], &filter) < 0 || size_of(args[2], &maxsize) < 0 ||
        flag_of(args[3], &raw) < 0)
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

/* -- FIFOs ------------------------------------------------------------------------------ */

#define FIFO_DATA 0xC1 /* fifo.py's DATA frame: C1 len:u32 (little-endian) payload */

/* pipe_send(fd, frame, limit) -> True | False | None: ``frame`` written as one DATA frame
 * with one write on the descriptor (O_NONBLOCK), which the kernel keeps whole: True. False:
 * no room, or no reader (EAGAIN, EPIPE: the Python path waits, or says so). None: not
 * a byte buffer, or larger than one write may be (the Python path cuts it into parts).
 * The GIL stays held: the write never waits, and no close() can come meanwhile. */
static PyObject *pipe_send(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    int fd;
    Py_ssize_t limit;
    Py_buffer view;
    if (arity("pipe_send", nargs, 3) < 0 || int_of(args[0], &fd) < 0 ||
        size_of(args[2], &limit) < 0)
        return NULL;
    PyObject *frame = args[1];
    if (PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (view.len > limit || view.len > UINT32_MAX) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    uint32_t size = (uint32_t)view.len;
    unsigned char buffer[PIPE_BUF]; /* one write: writev costs the kernel more here */
    if (size > sizeof(buffer) - 5) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    buffer[0] = FIFO_DATA;
    buffer[1] = size & 0xFF;
    buffer[2] = (size >> 8) & 0xFF;
    buffer[3] = (size >> 16) & 0xFF;
    buffer[4] = (unsigned char)(size >> 24);
    memcpy(buffer + 5, view.buf, size);
    ssize_t done = write(fd, buffer, 5 + (size_t)size);
    int error = errno;
    PyBuffer_Release(&view);
    if (done < 0 && error == EINTR) { /* nothing was written: a whole frame or none */
        if (PyErr_CheckSignals() < 0)
            return NULL;
        Py_RETURN_FALSE; /* the Python path tries again (a handler may have closed it) */
    }
    if (done == (ssize_t)(5 + size))
        Py_RETURN_TRUE;
    if (done >= 0) { /* a pipe never writes part of a write this small */
        PyErr_SetString(PyExc_OSError, "a FIFO took part of a frame");
        return NULL;
    }
    if (error == EAGAIN || error == EPIPE)
        Py_RETURN_FALSE;
    errno = error;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyMethodDef methods[] = {
    {"mq_send", (PyCFunction)(void (*)(void))mq_send, METH_FASTCALL,
     "mq_send(mqd, frame, priority, raw, limit) -> True | False | None"},
    {"mq_recv", (PyCFunction)(void (*)(void))mq_recv, METH_FASTCALL,
     "mq_recv(mqd, msgsize, raw) -> (payload | None, priority) | False | None"},
    {"msg_send", (PyCFunction)(void (*)(void))msg_send, METH_FASTCALL,
     "msg_send(msqid, mtype, frame, raw, limit) -> bool: sent without waiting"},
    {"msg_recv", (PyCFunction)(void (*)(void))msg_recv, METH_FASTCALL,
     "msg_recv(msqid, type_filter, maxsize, raw) -> (payload | None, type) | None"},
    {"pipe_send", (PyCFunction)(void (*)(void))pipe_send, METH_FASTCALL,
     "pipe_send(fd, frame, limit) -> True | False | None: one DATA frame, one write"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "osipc._msgc",
    "mq:// and sysv+mq:// send and receive, and a fifo:// send, in one call, in C (optional).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__msgc(void) {
    return PyModule_Create(&module);
}
