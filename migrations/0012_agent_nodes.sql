CREATE TABLE `agent_enrolments` (
	`server_id` integer PRIMARY KEY NOT NULL,
	`token_sha256` text NOT NULL,
	`expires_at` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `agent_enrolments_token_sha256_unique` ON `agent_enrolments` (`token_sha256`);--> statement-breakpoint
CREATE TABLE `agent_nodes` (
	`server_id` integer PRIMARY KEY NOT NULL,
	`kid` text NOT NULL,
	`jwk` text NOT NULL,
	`enrolled_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`last_seq` integer DEFAULT 0 NOT NULL,
	`last_sample_at` text,
	FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON UPDATE no action ON DELETE cascade
);
