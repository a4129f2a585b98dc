/* SPDX-License-Identifier: MIT */
/*
 * The control socket: a unix stream socket serving JSON requests, one per
 * line, to up to API_MAX_CLIENTS clients at once, and sending every client
 * the VM's events. One thread does it all with poll(); a client that sends
 * garbage gets an error reply, one that stops reading is dropped, and
 * neither touches the VM's state.
 */
#ifndef KVMINI_VMM_API_SERVER_H
#define KVMINI_VMM_API_SERVER_H

#include "common/err.h"
#include "kvmini.h"

#define API_MAX_CLIENTS 16

struct api_server;

/*
 * Binds and listens on path (which must not exist: a stale socket is not
 * removed behind the user's back). Serving starts with api_server_start().
 * 0, or -errno with one line in e.
 */
int api_server_open(struct kvmini_vm *vm, const char *path, struct api_server **out, struct err *e);
struct api_request;
/*
 * Starts a migration on the server's own thread (the socket keeps serving
 * meanwhile); its progress and end are events: migration, migration-done,
 * migration-failed. 0, or -EBUSY with why when one is running.
 */
int api_server_migrate(struct api_server *s, const struct api_request *req, char *why, size_t whylen);
/* Asks the running migration to give up: 0, or -ENOENT when none runs. */
int api_server_migrate_cancel(struct api_server *s);
/* 0 when path can become the socket (it does not exist, and fits); else -errno with one line in e. */
int api_server_check_path(const char *path, struct err *e);
/*
 * Starts serving on its own thread (again: nothing): at once from kvmini_vm_create() (info works
 * before the VM starts), or from kvmini_vm_start() after the sandbox when there is one.
 */
int api_server_start(struct api_server *s, struct err *e);
/* The socket's path for removal; NULL once given away. */
const char *api_server_path(const struct api_server *s);
/* Leaves removing the socket to someone else (the sandbox's helper: a jail hides the path). */
void api_server_forget_path(struct api_server *s);
/* Sends what is pending (events included) for up to a second, closes every client, removes the socket. */
void api_server_close(struct api_server *s);

#endif
