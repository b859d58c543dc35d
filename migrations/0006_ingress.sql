CREATE TABLE `hostnames` (
	`hostname` text PRIMARY KEY NOT NULL,
	`instance_id` integer NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`instance_id`) REFERENCES `instances`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `hostnames_instance_idx` ON `hostnames` (`instance_id`);--> statement-breakpoint
CREATE TABLE `ingress_state` (
	`server_id` integer PRIMARY KEY NOT NULL,
	`applied_hash` text,
	`applied_at` text,
	`last_error` text,
	`last_error_at` text,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON UPDATE no action ON DELETE cascade
);
