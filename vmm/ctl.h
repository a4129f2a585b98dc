/* SPDX-License-Identifier: MIT */
/* `kvmini ctl`: the control socket's command-line client. */
#ifndef KVMINI_VMM_CTL_H
#define KVMINI_VMM_CTL_H

/* argv[0] is "ctl". Returns the exit status: 0 for a successful reply, 1 otherwise. */
int ctl_main(int argc, char **argv);

#endif
