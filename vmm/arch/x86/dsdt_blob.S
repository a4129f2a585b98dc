/* The DSDT, compiled from vmm/arch/x86/dsdt.asl by iasl at build time, embedded read-only. */
	.section .rodata
	.balign 16
	.global dsdt_aml
dsdt_aml:
	.incbin DSDT_AML_PATH
	.global dsdt_aml_end
dsdt_aml_end:
	.section .note.GNU-stack,"",@progbits
